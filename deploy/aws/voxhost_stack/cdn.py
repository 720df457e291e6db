"""Pre-rendered lines on a CDN (context `cdn`): a private S3 bucket behind CloudFront with origin
access control. `voxhost cache publish lines.csv --to s3://<LinesBucketName>/<prefix>` fills it;
games fetch https://<LinesCdnDomain>/<prefix>/<url from the manifest>.

The bucket is never public: CloudFront signs its requests (OAC, SigV4) and the bucket policy
admits only this distribution (aws:SourceArn). Published files are content-addressed and
immutable, so the edge caches them for a year; the latest manifest.json for a minute.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, RemovalPolicy
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3

from voxhost_stack.config import StackConfig


def add_cdn(stack, cfg: StackConfig) -> None:
    if not cfg.cdn:
        return
    bucket = s3.Bucket(
        stack, "Lines", block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
        encryption=s3.BucketEncryption.S3_MANAGED, object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=RemovalPolicy.RETAIN,
        # Retention (docs/deploy.md): published lines are game content and stay until a studio
        # removes a prefix; an upload that never finished is dropped after a week.
        lifecycle_rules=[s3.LifecycleRule(id="abort-incomplete-uploads",
                                          abort_incomplete_multipart_upload_after=Duration.days(7))])
    distribution = cloudfront.Distribution(
        stack, "LinesCdn", comment=f"{stack.stack_name}: pre-rendered lines",
        default_behavior=cloudfront.BehaviorOptions(
            origin=origins.S3BucketOrigin.with_origin_access_control(bucket),
            viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
            allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
            cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED, compress=False),  # audio: already compressed
        price_class=cloudfront.PriceClass.PRICE_CLASS_100, http_version=cloudfront.HttpVersion.HTTP2_AND_3)
    stack.lines_bucket, stack.lines_cdn = bucket, distribution
    CfnOutput(stack, "LinesBucketName", value=bucket.bucket_name,
              description="voxhost cache publish --to s3://<this>/<prefix>")
    CfnOutput(stack, "LinesCdnDomain", value=distribution.distribution_domain_name,
              description="games fetch https://<this>/<prefix>/<manifest url>")
