// The version of the HTTP API's contract, which the CLI and the backend both state on every exchange. The two are
// installed and upgraded apart (a data owner's CLI, an operator's deployed stack), and a peer that misreads a
// changed reply does harm quietly: an older CLI completed a checkpoint upload from the first page of its part
// URLs. With the version on both sides, a mismatch is refused before any work, naming the side to upgrade.

export const PROTOCOL_HEADER = "x-ferret-protocol";

/** Bumped whenever a route's request or reply changes in a way a peer of the previous version would misread. */
export const PROTOCOL_VERSION = 1;

/** Which side of a mismatch is behind, and what its user should do. */
export function protocolMismatch(client: number, server: number): string {
  const versions = `the client speaks Ferret protocol ${client} and the backend ${server}`;
  return client < server
    ? `${versions}: upgrade the ferret CLI to the backend's release`
    : `${versions}: deploy the backend from the CLI's release (npx cdk deploy, or restart ferret local up), ` +
        "or use the CLI of the backend's release";
}
