import { Duration, RemovalPolicy } from "aws-cdk-lib";
import { AccessLogFormat } from "aws-cdk-lib/aws-apigateway";
import {
  HttpApi,
  HttpMethod,
  HttpStage,
  type IHttpRouteAuthorizer,
  LogGroupLogDestination,
} from "aws-cdk-lib/aws-apigatewayv2";
import {
  HttpIamAuthorizer,
  HttpLambdaAuthorizer,
  HttpLambdaResponseType,
} from "aws-cdk-lib/aws-apigatewayv2-authorizers";
import { HttpLambdaIntegration } from "aws-cdk-lib/aws-apigatewayv2-integrations";
import type { IFunction } from "aws-cdk-lib/aws-lambda";
import { LogGroup, RetentionDays } from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import type { Route, RouteAuth } from "../../functions/routes.ts";

export interface ApiProps {
  routes: readonly Route[];
  /** The function serving a handler file; one function may serve several routes. */
  functionFor: (handler: string) => IFunction;
  /** Checks a client's bearer token and passes its run and client id on to the route. */
  authorizer: IFunction;
}

// Fields an operator needs to trace a 4xx/5xx back to a request, a client address and an authorizer verdict.
const accessLogFormat = AccessLogFormat.custom(
  JSON.stringify({
    requestId: "$context.requestId",
    requestTime: "$context.requestTime",
    sourceIp: "$context.identity.sourceIp",
    routeKey: "$context.routeKey",
    status: "$context.status",
    responseLength: "$context.responseLength",
    latencyMs: "$context.responseLatency",
    integrationError: "$context.integrationErrorMessage",
    authorizerError: "$context.authorizer.error",
    iamCaller: "$context.identity.userArn",
  }),
);

/**
 * The HTTP API of DESIGN.md "Trust": client routes behind a Lambda authorizer on per-client bearer tokens,
 * operator routes behind IAM (SigV4). Routes come from functions/routes.ts, the same list the local router uses.
 */
export class Api extends Construct {
  readonly httpApi: HttpApi;

  constructor(scope: Construct, id: string, props: ApiProps) {
    super(scope, id);

    this.httpApi = new HttpApi(this, "HttpApi", {
      description: "Ferret federated fine-tuning: operator (IAM) and client (bearer token) routes",
      createDefaultStage: false,
    });
    const accessLogs = new LogGroup(this, "AccessLogs", {
      retention: RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    new HttpStage(this, "DefaultStage", {
      httpApi: this.httpApi,
      stageName: "$default",
      autoDeploy: true,
      // A ceiling against runaway clients; 200 concurrent uploads into one round stay well under it.
      throttle: { rateLimit: 500, burstLimit: 1000 },
      accessLogSettings: { destination: new LogGroupLogDestination(accessLogs), format: accessLogFormat },
    });

    const authorizers: Record<RouteAuth, IHttpRouteAuthorizer> = {
      client: new HttpLambdaAuthorizer("ClientToken", props.authorizer, {
        responseTypes: [HttpLambdaResponseType.SIMPLE],
        identitySource: ["$request.header.Authorization"],
        // No caching: a revoked token must stop working on its next request, not minutes later.
        resultsCacheTtl: Duration.seconds(0),
      }),
      operator: new HttpIamAuthorizer(),
    };

    const integrations = new Map<string, HttpLambdaIntegration>();
    for (const route of props.routes) {
      let integration = integrations.get(route.handler);
      if (!integration) {
        integration = new HttpLambdaIntegration(
          `${route.handler}Integration`,
          props.functionFor(route.handler),
        );
        integrations.set(route.handler, integration);
      }
      this.httpApi.addRoutes({
        path: route.path,
        methods: [HttpMethod[route.method]],
        integration,
        authorizer: authorizers[route.auth],
      });
    }
  }

  get url(): string {
    // createDefaultStage is off (to configure logs and throttling), so build the $default stage's URL here.
    return `${this.httpApi.apiEndpoint}/`;
  }
}
