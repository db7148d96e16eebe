// One Logger, Metrics and Tracer per container, and the middy stack every handler shares.
import { Logger } from "@aws-lambda-powertools/logger";
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { Metrics } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import { Tracer } from "@aws-lambda-powertools/tracer";
import { captureLambdaHandler } from "@aws-lambda-powertools/tracer/middleware";
import middy from "@middy/core";

export const logger = new Logger({ serviceName: "ferret" });
// Through the logger, so "no metrics to publish" is a structured WARN line that the log level can silence.
export const metrics = new Metrics({ namespace: "Ferret", serviceName: "ferret", logger });
export const tracer = new Tracer({ serviceName: "ferret" });

/** Wraps a step or authorizer function with logging context, metric flushing and tracing. Traces leave out the
 * function's response: replies carry a new client's token (shown once, stored only as a hash) and presigned URLs,
 * and whoever may read traces must not collect them. */
export function observed<E, R>(fn: (event: E) => Promise<R>) {
  return middy(fn)
    .use(captureLambdaHandler(tracer, { captureResponse: false }))
    .use(logMetrics(metrics))
    .use(injectLambdaContext(logger));
}
