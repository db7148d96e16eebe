import { Duration, RemovalPolicy, Validations } from "aws-cdk-lib";
import { AttributeType, BillingMode, Table } from "aws-cdk-lib/aws-dynamodb";
import { BlockPublicAccess, Bucket, BucketEncryption, ObjectOwnership } from "aws-cdk-lib/aws-s3";
import { Construct } from "constructs";
import { STAGING_PREFIX } from "../../functions/storage/objects.ts";

export interface StorageProps {
  /** Refuse DeleteTable until an operator turns this off (default on in the app; off only for throwaway stacks). */
  deletionProtection: boolean;
}

/**
 * The two stores of DESIGN.md "Storage": one DynamoDB table for runs, clients, rounds, uploads and update-log
 * entries, and one bucket for checkpoints and update-log objects. Both outlive the stack: a `cdk destroy` must
 * never take trained weights with it.
 */
export class Storage extends Construct {
  readonly table: Table;
  readonly bucket: Bucket;

  constructor(scope: Construct, id: string, props: StorageProps) {
    super(scope, id);

    this.table = new Table(this, "Table", {
      partitionKey: { name: "pk", type: AttributeType.STRING },
      sortKey: { name: "sk", type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: props.deletionProtection,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const accessLogs = new Bucket(this, "AccessLogs", {
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      lifecycleRules: [{ id: "expire-access-logs", expiration: Duration.days(90) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(accessLogs).acknowledge({
      id: "AwsSolutions-S1",
      reason: "This bucket is the access-log destination; logging its own accesses into itself would loop.",
    });

    // Versioning rather than Object Lock: the handlers never overwrite a key (conditional puts), so versions cost
    // nothing in normal operation, yet an accidental delete or a buggy overwrite stays recoverable for 30 days.
    // Object Lock would make every checkpoint of every round undeletable for its retention period — tens of GB a
    // round that an operator could not clean up — and cannot be turned off once the bucket has it.
    this.bucket = new Bucket(this, "Checkpoints", {
      // SSE-S3, not KMS: every client downloads whole checkpoints through presigned URLs, and SSE-KMS would add
      // a KMS request per object read and make every presigning role need kms:Decrypt.
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      versioned: true,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: "checkpoints/",
      lifecycleRules: [
        // An operator's presigned multipart upload of the initial checkpoint that dies half way leaves parts
        // that are billed but invisible; two days is ample time to finish a legitimate upload of tens of GB.
        { id: "abort-incomplete-multipart-uploads", abortIncompleteMultipartUploadAfter: Duration.days(2) },
        // fedavg clients' staged updates (4 bytes per parameter each) are copied to the round's committed key
        // when accepted; a week outlasts any round deadline (at most 7 days).
        {
          id: "expire-fedavg-staging",
          prefix: STAGING_PREFIX,
          expiration: Duration.days(8),
          noncurrentVersionExpiration: Duration.days(1),
        },
        {
          id: "expire-deleted-versions",
          noncurrentVersionExpiration: Duration.days(30),
          expiredObjectDeleteMarker: true,
        },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }
}
