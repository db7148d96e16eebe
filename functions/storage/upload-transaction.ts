// An upload's one transaction: the upload item (new), the round's counter (open, before its deadline, the client
// selected) and the client's standing (not revoked), written together or not at all; and what a refusal says.
import { bytesOf, keys } from "./items.ts";
import type { UploadRecord } from "./records.ts";

/** Why an upload's transaction was refused, in the order the transaction lists its items. */
export interface UploadRefusal {
  duplicate: boolean;
  roundRefused: boolean;
  clientRefused: boolean;
}

export class UploadRefused extends Error {
  constructor(readonly refusal: UploadRefusal) {
    super(`upload refused: ${JSON.stringify(refusal)}`);
    this.name = "UploadRefused";
  }
}

export function uploadTransaction(tableName: string, upload: UploadRecord, now: number) {
  const { coefficients, ...rest } = upload;
  return [
    {
      Put: {
        TableName: tableName,
        Item: {
          ...keys.upload(upload.runId, upload.round, upload.clientId),
          ...rest,
          coefficients: bytesOf(coefficients),
        },
        ConditionExpression: "attribute_not_exists(pk)",
      },
    },
    {
      Update: {
        TableName: tableName,
        Key: keys.round(upload.runId, upload.round),
        UpdateExpression: "ADD uploadCount :one",
        ConditionExpression: "#state = :open AND deadline > :now AND contains(selected, :client)",
        ExpressionAttributeNames: { "#state": "state" },
        ExpressionAttributeValues: { ":one": 1, ":open": "OPEN", ":now": now, ":client": upload.clientId },
      },
    },
    {
      ConditionCheck: {
        TableName: tableName,
        Key: keys.client(upload.runId, upload.clientId),
        ConditionExpression: "revoked = :f",
        ExpressionAttributeValues: { ":f": false },
      },
    },
  ];
}

/**
 * What a cancelled upload transaction says: which conditions failed, and whether it only lost a race with other
 * uploads to the same round (then nothing was applied). Undefined for any other error.
 */
export function cancellationOf(
  error: unknown,
): { refusal: UploadRefusal; conflictOnly: boolean } | undefined {
  const reasons = (error as { CancellationReasons?: { Code?: string }[] }).CancellationReasons;
  if (!reasons) return undefined;
  const failed = (i: number) => reasons[i]?.Code === "ConditionalCheckFailed";
  const refusal = { duplicate: failed(0), roundRefused: failed(1), clientRefused: failed(2) };
  const conflictOnly =
    !Object.values(refusal).some(Boolean) && reasons.some((r) => r.Code === "TransactionConflict");
  return { refusal, conflictOnly };
}
