// Stopping the local stack takes a moment: DynamoDB Local is a child JVM that must be killed on the way out. A
// second SIGINT or SIGTERM in that moment (a double Ctrl-C, or a supervisor signalling the whole process group
// while tsx relays the signal too) would end this process by Node's default action and leave the JVM running with
// no parent. So the first signal starts the stop, and later ones only say that it is under way.

/** Resolves with the first SIGINT or SIGTERM; every later one calls `onRepeat` instead of killing the process. */
export function stopSignal(onRepeat: (signal: NodeJS.Signals) => void): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let received = false;
    const handle = (signal: NodeJS.Signals) => {
      if (received) onRepeat(signal);
      else {
        received = true;
        resolve(signal);
      }
    };
    process.on("SIGINT", handle);
    process.on("SIGTERM", handle);
  });
}
