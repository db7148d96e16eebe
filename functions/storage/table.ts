// Round state in one DynamoDB table (pk/sk). Every state change is a conditional write, so concurrent Lambdas
// (or worker threads) agree on one outcome: one upload per client per round, one close per round, one commit.
import { ConditionalCheckFailedException, type DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
  type UpdateCommandInput,
} from "@aws-sdk/lib-dynamodb";
import { bytesOf, floatsOf, keys, strip } from "./items.ts";
import type {
  ClientRecord,
  LogEntry,
  RoundRecord,
  RoundState,
  RunRecord,
  RunStatus,
  UploadRecord,
} from "./records.ts";
import { cancellationOf, UploadRefused, uploadTransaction } from "./upload-transaction.ts";

/** Attempts at an upload transaction that only lost a race with other uploads to the same round. */
const UPLOAD_ATTEMPTS = 25;

async function conditional(write: Promise<unknown>): Promise<boolean> {
  try {
    await write;
    return true;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return false;
    throw error;
  }
}

export class RoundTable {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    readonly tableName: string,
  ) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  }

  /** A transaction item that writes `item` only if no item has its key yet. */
  private newItem(item: Record<string, unknown>) {
    return {
      Put: { TableName: this.tableName, Item: item, ConditionExpression: "attribute_not_exists(pk)" },
    };
  }

  private put(item: Record<string, unknown>, condition = "attribute_not_exists(pk)") {
    return this.doc.send(
      new PutCommand({ TableName: this.tableName, Item: item, ConditionExpression: condition }),
    );
  }

  /** A conditional update of one item: true when it applied, false when its condition did not hold. */
  private update(
    key: { pk: string; sk: string },
    input: Omit<UpdateCommandInput, "TableName" | "Key">,
  ): Promise<boolean> {
    return conditional(this.doc.send(new UpdateCommand({ TableName: this.tableName, Key: key, ...input })));
  }

  /** Strongly consistent unless `consistent` is false: half the read capacity, and a second's staleness at most. */
  private async get<T>(key: { pk: string; sk: string }, consistent = true): Promise<T | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: key, ConsistentRead: consistent }),
    );
    return strip<T>(out.Item);
  }

  /** The items with key `pk` and a sort key in `between`, in sort-key order, one page (≤ 1 MB) at a time. */
  private async *queryPages(pk: string, between: [string, string]): AsyncIterable<Record<string, unknown>[]> {
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: "pk = :pk AND sk BETWEEN :a AND :b",
          ExpressionAttributeValues: { ":pk": pk, ":a": between[0], ":b": between[1] },
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      yield out.Items ?? [];
      start = out.LastEvaluatedKey;
    } while (start);
  }

  private async queryAll(pk: string, between: [string, string]): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    for await (const page of this.queryPages(pk, between)) items.push(...page);
    return items;
  }

  async createRun(run: RunRecord): Promise<void> {
    await this.put({ ...keys.run(run.runId), ...run });
  }

  /** Runs created before strategies existed have none stored: they are ferret runs. */
  async getRun(runId: string, consistent = true): Promise<RunRecord | undefined> {
    const run = await this.get<RunRecord>(keys.run(runId), consistent);
    return run && { ...run, config: { ...run.config, strategy: run.config.strategy ?? "ferret" } };
  }

  /** Moves the run from one of `from` to `to`; false when it was in another status. */
  setRunStatus(runId: string, from: RunStatus[], to: RunStatus): Promise<boolean> {
    const names = Object.fromEntries(from.map((s, i) => [`:f${i}`, s]));
    return this.update(keys.run(runId), {
      UpdateExpression: "SET #status = :to",
      ConditionExpression: `#status IN (${Object.keys(names).join(", ")})`,
      ExpressionAttributeNames: { "#status": "status" },
      ExpressionAttributeValues: { ...names, ":to": to },
    });
  }

  /** Records why an import failed, unless checkpoint 0 is in by now. */
  recordImportFailure(runId: string, failure: NonNullable<RunRecord["importFailure"]>): Promise<boolean> {
    return this.update(keys.run(runId), {
      UpdateExpression: "SET importFailure = :failure",
      ConditionExpression: "initialCheckpointReady = :f",
      ExpressionAttributeValues: { ":failure": failure, ":f": false },
    });
  }

  markInitialCheckpointReady(runId: string): Promise<boolean> {
    return this.update(keys.run(runId), {
      UpdateExpression: "SET initialCheckpointReady = :t",
      ConditionExpression: "initialCheckpointReady = :f",
      ExpressionAttributeValues: { ":t": true, ":f": false },
    });
  }

  /**
   * Creates round `round.round` and points the active run at it, both or neither. False if the round exists
   * already or the run is not active.
   */
  async openRound(round: RoundRecord): Promise<boolean> {
    try {
      await this.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            this.newItem({ ...keys.round(round.runId, round.round), ...round }),
            {
              Update: {
                TableName: this.tableName,
                Key: keys.run(round.runId),
                UpdateExpression: "SET currentRound = :r",
                // A pause that lands while the previous round finishes must stop the next one from opening.
                ConditionExpression: "currentRound = :previous AND #status = :active",
                ExpressionAttributeNames: { "#status": "status" },
                ExpressionAttributeValues: {
                  ":r": round.round,
                  ":previous": round.round - 1,
                  ":active": "ACTIVE",
                },
              },
            },
          ],
        }),
      );
      return true;
    } catch (error) {
      if ((error as Error).name === "TransactionCanceledException") return false;
      throw error;
    }
  }

  /**
   * Creates the client, its token and its name's claim together. Returns the id of the client that holds the name
   * instead when another client of the run not revoked has it (then nothing is written): names are what an
   * operator reads in `run status`, and two alike made the one to revoke a guess.
   */
  async createClient(client: ClientRecord, tokenHash: string): Promise<string | undefined> {
    const name = keys.clientName(client.runId, client.name);
    try {
      await this.doc.send(
        new TransactWriteCommand({
          TransactItems: [
            this.newItem({ ...keys.client(client.runId, client.clientId), ...client }),
            this.newItem({ ...keys.token(tokenHash), runId: client.runId, clientId: client.clientId }),
            {
              Put: {
                TableName: this.tableName,
                Item: { ...name, clientId: client.clientId, released: false },
                ConditionExpression: "attribute_not_exists(pk) OR released = :released",
                ExpressionAttributeValues: { ":released": true },
              },
            },
          ],
        }),
      );
      return undefined;
    } catch (error) {
      const reasons = (error as { CancellationReasons?: { Code?: string }[] }).CancellationReasons;
      const holder =
        reasons?.[2]?.Code === "ConditionalCheckFailed"
          ? (await this.get<{ clientId: string }>(name))?.clientId
          : undefined;
      if (!holder) throw error;
      return holder;
    }
  }

  /** Lets a revoked client's name be given to a new client (a name claimed before names were held has none). */
  async releaseClientName(runId: string, name: string, clientId: string): Promise<void> {
    await this.update(keys.clientName(runId, name), {
      UpdateExpression: "SET released = :released",
      ConditionExpression: "clientId = :client",
      ExpressionAttributeValues: { ":released": true, ":client": clientId },
    });
  }

  getClient(runId: string, clientId: string): Promise<ClientRecord | undefined> {
    return this.get<ClientRecord>(keys.client(runId, clientId));
  }

  async clientForToken(tokenHash: string): Promise<ClientRecord | undefined> {
    const token = await this.get<{ runId: string; clientId: string }>(keys.token(tokenHash));
    return token && this.getClient(token.runId, token.clientId);
  }

  async listClients(runId: string): Promise<ClientRecord[]> {
    const items = await this.queryAll(`RUN#${runId}`, ["CLIENT#", "CLIENT#\uffff"]);
    return items.map((item) => strip<ClientRecord>(item) as ClientRecord);
  }

  revokeClient(runId: string, clientId: string): Promise<boolean> {
    return this.update(keys.client(runId, clientId), {
      UpdateExpression: "SET revoked = :t",
      ConditionExpression: "revoked = :f",
      ExpressionAttributeValues: { ":t": true, ":f": false },
    });
  }

  getRound(runId: string, round: number, consistent = true): Promise<RoundRecord | undefined> {
    return this.get<RoundRecord>(keys.round(runId, round), consistent);
  }

  async listRounds(runId: string, from: number, to: number): Promise<RoundRecord[]> {
    const items = await this.queryAll(`RUN#${runId}`, [keys.round(runId, from).sk, keys.round(runId, to).sk]);
    return items.map((item) => strip<RoundRecord>(item) as RoundRecord);
  }

  /**
   * Stores the upload and counts it in one transaction: refused unless the round is open, before its deadline,
   * the client is selected and not revoked, and it has not uploaded already. `now` is read at every attempt: an
   * upload that keeps losing races to others must not be let in after the deadline.
   */
  async recordUpload(upload: UploadRecord, now: () => number): Promise<void> {
    const transaction = () =>
      new TransactWriteCommand({ TransactItems: uploadTransaction(this.tableName, upload, now()) });
    for (let attempt = 1; ; attempt++) {
      try {
        await this.doc.send(transaction());
        return;
      } catch (error) {
        const cancelled = cancellationOf(error);
        if (!cancelled) throw error;
        // Uploads racing for the same round item conflict; none was applied, so trying again is safe.
        if (!cancelled.conflictOnly || attempt >= UPLOAD_ATTEMPTS) throw new UploadRefused(cancelled.refusal);
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 20 * attempt));
      }
    }
  }

  /** OPEN -> AGGREGATING once the counter reaches the quorum. Exactly one caller gets true. */
  closeOnQuorum(runId: string, round: number): Promise<boolean> {
    return this.transition(runId, round, "OPEN", "AGGREGATING", "uploadCount >= #quorum", {
      closeReason: "quorum",
    });
  }

  /** Lowers an open round's quorum to `quorum` (never raises it). */
  lowerQuorum(runId: string, round: number, quorum: number): Promise<boolean> {
    return this.update(keys.round(runId, round), {
      UpdateExpression: "SET #quorum = :quorum",
      ConditionExpression: "#state = :open AND #quorum > :quorum",
      ExpressionAttributeNames: { "#state": "state", "#quorum": "quorum" },
      ExpressionAttributeValues: { ":quorum": quorum, ":open": "OPEN" },
    });
  }

  /** OPEN -> AGGREGATING at the deadline, if at least the minimum uploaded. */
  closeAtDeadline(runId: string, round: number, now: number): Promise<boolean> {
    return this.transition(
      runId,
      round,
      "OPEN",
      "AGGREGATING",
      "uploadCount >= minUploads AND deadline <= :now",
      {
        closeReason: "deadline",
        ":now": now,
      },
    );
  }

  /** OPEN -> FAILED at the deadline, if fewer than the minimum uploaded by then. */
  failAtDeadline(runId: string, round: number, now: number, failureReason: string): Promise<boolean> {
    return this.transition(runId, round, "OPEN", "FAILED", "uploadCount < minUploads AND deadline <= :now", {
      failureReason,
      ":now": now,
    });
  }

  commitRound(runId: string, round: number): Promise<boolean> {
    return this.transition(runId, round, "AGGREGATING", "DONE", undefined, { resultCheckpoint: round + 1 });
  }

  failRound(runId: string, round: number, from: RoundState, failureReason: string): Promise<boolean> {
    return this.transition(runId, round, from, "FAILED", undefined, { failureReason });
  }

  private transition(
    runId: string,
    round: number,
    from: RoundState,
    to: RoundState,
    extraCondition: string | undefined,
    values: Record<string, unknown>,
  ): Promise<boolean> {
    const sets = Object.keys(values).filter((name) => !name.startsWith(":"));
    const placeholders = Object.fromEntries(
      Object.entries(values).map(([name, value]) => [name.startsWith(":") ? name : `:${name}`, value]),
    );
    return this.update(keys.round(runId, round), {
      UpdateExpression: `SET #state = :to${sets.map((name) => `, ${name} = :${name}`).join("")}`,
      ConditionExpression: `#state = :from${extraCondition ? ` AND ${extraCondition}` : ""}`,
      ExpressionAttributeNames: {
        "#state": "state",
        ...(extraCondition?.includes("#quorum") ? { "#quorum": "quorum" } : {}),
      },
      ExpressionAttributeValues: { ...placeholders, ":from": from, ":to": to },
    });
  }

  /**
   * A round's uploads in client-id order, a page at a time: at K = 65,536 each holds 262 KB of coefficients, and
   * a round's thousands at once would not fit an aggregation Lambda.
   */
  async *uploadPages(runId: string, round: number): AsyncIterable<UploadRecord[]> {
    for await (const page of this.queryPages(keys.upload(runId, round, "").pk, [
      "UPLOAD#",
      "UPLOAD#\uffff",
    ])) {
      yield page.map((item) => {
        const record = strip<UploadRecord & { coefficients: Uint8Array }>(item) as UploadRecord & {
          coefficients: Uint8Array;
        };
        return { ...record, coefficients: floatsOf(record.coefficients) };
      });
    }
  }

  async hasUpload(runId: string, round: number, clientId: string): Promise<boolean> {
    return (await this.get(keys.upload(runId, round, clientId))) !== undefined;
  }

  /**
   * fedavg: claims the right to write this client's committed update object for `sha256`. Returns the SHA-256
   * that holds the claim: ours, or an earlier commit's (then only that content may be written). S3 emulators
   * ignore If-None-Match, so this conditional write, not the object store, decides which bytes become the update.
   */
  async claimUpdate(runId: string, round: number, clientId: string, sha256: string): Promise<string> {
    const key = keys.updateClaim(runId, round, clientId);
    if (await conditional(this.put({ ...key, sha256 }))) return sha256;
    return ((await this.get<{ sha256: string }>(key)) as { sha256: string }).sha256;
  }

  /**
   * Claims the writing of a checkpoint's export until `until` (ms): refused while an earlier claim holds. An
   * export outlives the HTTP API's 30 s, and each repeat of the request would otherwise start another full copy.
   */
  async claimExport(runId: string, checkpoint: number, now: number, until: number): Promise<boolean> {
    return conditional(
      this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { ...keys.exportClaim(runId, checkpoint), until },
          ConditionExpression: "attribute_not_exists(pk) OR #until < :now",
          ExpressionAttributeNames: { "#until": "until" },
          ExpressionAttributeValues: { ":now": now },
        }),
      ),
    );
  }

  /** Gives back a claim that `claimExport` granted until `until`, unless another call has claimed since. */
  async releaseExport(runId: string, checkpoint: number, until: number): Promise<void> {
    await this.update(keys.exportClaim(runId, checkpoint), {
      UpdateExpression: "SET #until = :released",
      ConditionExpression: "#until = :ours",
      ExpressionAttributeNames: { "#until": "until" },
      ExpressionAttributeValues: { ":released": 0, ":ours": until },
    });
  }

  /** Writes the round's update-log entry once; a re-run finds the same entry already there. */
  async putLogEntry(entry: LogEntry): Promise<boolean> {
    const item = {
      ...keys.log(entry.runId, entry.round),
      ...entry,
      coefficients: bytesOf(entry.coefficients),
    };
    return conditional(this.put(item));
  }

  async getLogEntries(runId: string, from: number, to: number): Promise<LogEntry[]> {
    const items = await this.queryAll(`RUN#${runId}`, [keys.log(runId, from).sk, keys.log(runId, to).sk]);
    return items.map((item) => {
      const entry = strip<LogEntry & { coefficients: Uint8Array }>(item) as LogEntry & {
        coefficients: Uint8Array;
      };
      return {
        ...entry,
        strategy: entry.strategy ?? "ferret",
        coefficients: floatsOf(entry.coefficients),
      };
    });
  }
}
