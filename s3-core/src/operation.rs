//! Every S3 API operation real clients send, with its IAM action.

use std::fmt;

macro_rules! operations {
    ($( $(#[$doc:meta])* $op:ident => $action:literal, )*) => {
        /// An S3 API operation, as classified from method, path, query and headers.
        ///
        /// [`S3Operation::Unknown`] is every request that is not one of the operations below;
        /// layers refuse it rather than forward it unchecked.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum S3Operation {
            $( $(#[$doc])* $op, )*
            /// A request that is not a recognised S3 operation. Always denied.
            Unknown,
        }

        impl S3Operation {
            /// Every known operation (without [`S3Operation::Unknown`]).
            pub const ALL: &'static [S3Operation] = &[ $( S3Operation::$op, )* ];

            /// The operation's name in the S3 API reference (`GetObject`, `ListObjectsV2`...).
            pub const fn name(self) -> &'static str {
                match self {
                    $( Self::$op => stringify!($op), )*
                    Self::Unknown => "Unknown",
                }
            }

            /// The IAM action that governs the operation on its main resource
            /// (`s3:GetObject`, `s3:ListBucket`...). Versioned variants
            /// (`s3:GetObjectVersion`...) are chosen per resource by
            /// [`S3Request::resources`](crate::S3Request::resources). `Unknown` has none.
            pub const fn iam_action(self) -> Option<&'static str> {
                match self {
                    $( Self::$op => Some($action), )*
                    Self::Unknown => None,
                }
            }
        }
    };
}

operations! {
    // Service
    /// `GET /`
    ListBuckets => "s3:ListAllMyBuckets",

    // Bucket CRUD and listings
    /// `PUT /bucket`
    CreateBucket => "s3:CreateBucket",
    /// `DELETE /bucket`
    DeleteBucket => "s3:DeleteBucket",
    /// `HEAD /bucket`
    HeadBucket => "s3:ListBucket",
    /// `GET /bucket?location`
    GetBucketLocation => "s3:GetBucketLocation",
    /// `GET /bucket`
    ListObjects => "s3:ListBucket",
    /// `GET /bucket?list-type=2`
    ListObjectsV2 => "s3:ListBucket",
    /// `GET /bucket?versions`
    ListObjectVersions => "s3:ListBucketVersions",
    /// `GET /bucket?uploads`
    ListMultipartUploads => "s3:ListBucketMultipartUploads",

    // Bucket sub-resources
    /// `GET /bucket?acl`
    GetBucketAcl => "s3:GetBucketAcl",
    /// `PUT /bucket?acl`
    PutBucketAcl => "s3:PutBucketAcl",
    /// `GET /bucket?tagging`
    GetBucketTagging => "s3:GetBucketTagging",
    /// `PUT /bucket?tagging`
    PutBucketTagging => "s3:PutBucketTagging",
    /// `DELETE /bucket?tagging`
    DeleteBucketTagging => "s3:PutBucketTagging",
    /// `GET /bucket?versioning`
    GetBucketVersioning => "s3:GetBucketVersioning",
    /// `PUT /bucket?versioning`
    PutBucketVersioning => "s3:PutBucketVersioning",
    /// `GET /bucket?policy`
    GetBucketPolicy => "s3:GetBucketPolicy",
    /// `PUT /bucket?policy`
    PutBucketPolicy => "s3:PutBucketPolicy",
    /// `DELETE /bucket?policy`
    DeleteBucketPolicy => "s3:DeleteBucketPolicy",
    /// `GET /bucket?policyStatus`
    GetBucketPolicyStatus => "s3:GetBucketPolicyStatus",
    /// `GET /bucket?cors`
    GetBucketCors => "s3:GetBucketCORS",
    /// `PUT /bucket?cors`
    PutBucketCors => "s3:PutBucketCORS",
    /// `DELETE /bucket?cors`
    DeleteBucketCors => "s3:PutBucketCORS",
    /// `GET /bucket?lifecycle`
    GetBucketLifecycleConfiguration => "s3:GetLifecycleConfiguration",
    /// `PUT /bucket?lifecycle`
    PutBucketLifecycleConfiguration => "s3:PutLifecycleConfiguration",
    /// `DELETE /bucket?lifecycle`
    DeleteBucketLifecycle => "s3:PutLifecycleConfiguration",
    /// `GET /bucket?encryption`
    GetBucketEncryption => "s3:GetEncryptionConfiguration",
    /// `PUT /bucket?encryption`
    PutBucketEncryption => "s3:PutEncryptionConfiguration",
    /// `DELETE /bucket?encryption`
    DeleteBucketEncryption => "s3:PutEncryptionConfiguration",
    /// `GET /bucket?website`
    GetBucketWebsite => "s3:GetBucketWebsite",
    /// `PUT /bucket?website`
    PutBucketWebsite => "s3:PutBucketWebsite",
    /// `DELETE /bucket?website`
    DeleteBucketWebsite => "s3:DeleteBucketWebsite",
    /// `GET /bucket?logging`
    GetBucketLogging => "s3:GetBucketLogging",
    /// `PUT /bucket?logging`
    PutBucketLogging => "s3:PutBucketLogging",
    /// `GET /bucket?notification`
    GetBucketNotificationConfiguration => "s3:GetBucketNotification",
    /// `PUT /bucket?notification`
    PutBucketNotificationConfiguration => "s3:PutBucketNotification",
    /// `GET /bucket?replication`
    GetBucketReplication => "s3:GetReplicationConfiguration",
    /// `PUT /bucket?replication`
    PutBucketReplication => "s3:PutReplicationConfiguration",
    /// `DELETE /bucket?replication`
    DeleteBucketReplication => "s3:PutReplicationConfiguration",
    /// `GET /bucket?ownershipControls`
    GetBucketOwnershipControls => "s3:GetBucketOwnershipControls",
    /// `PUT /bucket?ownershipControls`
    PutBucketOwnershipControls => "s3:PutBucketOwnershipControls",
    /// `DELETE /bucket?ownershipControls`
    DeleteBucketOwnershipControls => "s3:PutBucketOwnershipControls",
    /// `GET /bucket?publicAccessBlock`
    GetPublicAccessBlock => "s3:GetBucketPublicAccessBlock",
    /// `PUT /bucket?publicAccessBlock`
    PutPublicAccessBlock => "s3:PutBucketPublicAccessBlock",
    /// `DELETE /bucket?publicAccessBlock`
    DeletePublicAccessBlock => "s3:PutBucketPublicAccessBlock",
    /// `GET /bucket?object-lock`
    GetObjectLockConfiguration => "s3:GetBucketObjectLockConfiguration",
    /// `PUT /bucket?object-lock`
    PutObjectLockConfiguration => "s3:PutBucketObjectLockConfiguration",
    /// `GET /bucket?accelerate`
    GetBucketAccelerateConfiguration => "s3:GetAccelerateConfiguration",
    /// `PUT /bucket?accelerate`
    PutBucketAccelerateConfiguration => "s3:PutAccelerateConfiguration",
    /// `GET /bucket?requestPayment`
    GetBucketRequestPayment => "s3:GetBucketRequestPayment",
    /// `PUT /bucket?requestPayment`
    PutBucketRequestPayment => "s3:PutBucketRequestPayment",
    /// `GET /bucket?analytics&id=`
    GetBucketAnalyticsConfiguration => "s3:GetAnalyticsConfiguration",
    /// `GET /bucket?analytics`
    ListBucketAnalyticsConfigurations => "s3:GetAnalyticsConfiguration",
    /// `PUT /bucket?analytics&id=`
    PutBucketAnalyticsConfiguration => "s3:PutAnalyticsConfiguration",
    /// `DELETE /bucket?analytics&id=`
    DeleteBucketAnalyticsConfiguration => "s3:PutAnalyticsConfiguration",
    /// `GET /bucket?metrics&id=`
    GetBucketMetricsConfiguration => "s3:GetMetricsConfiguration",
    /// `GET /bucket?metrics`
    ListBucketMetricsConfigurations => "s3:GetMetricsConfiguration",
    /// `PUT /bucket?metrics&id=`
    PutBucketMetricsConfiguration => "s3:PutMetricsConfiguration",
    /// `DELETE /bucket?metrics&id=`
    DeleteBucketMetricsConfiguration => "s3:PutMetricsConfiguration",
    /// `GET /bucket?inventory&id=`
    GetBucketInventoryConfiguration => "s3:GetInventoryConfiguration",
    /// `GET /bucket?inventory`
    ListBucketInventoryConfigurations => "s3:GetInventoryConfiguration",
    /// `PUT /bucket?inventory&id=`
    PutBucketInventoryConfiguration => "s3:PutInventoryConfiguration",
    /// `DELETE /bucket?inventory&id=`
    DeleteBucketInventoryConfiguration => "s3:PutInventoryConfiguration",
    /// `GET /bucket?intelligent-tiering&id=`
    GetBucketIntelligentTieringConfiguration => "s3:GetIntelligentTieringConfiguration",
    /// `GET /bucket?intelligent-tiering`
    ListBucketIntelligentTieringConfigurations => "s3:GetIntelligentTieringConfiguration",
    /// `PUT /bucket?intelligent-tiering&id=`
    PutBucketIntelligentTieringConfiguration => "s3:PutIntelligentTieringConfiguration",
    /// `DELETE /bucket?intelligent-tiering&id=`
    DeleteBucketIntelligentTieringConfiguration => "s3:PutIntelligentTieringConfiguration",
    /// `POST /bucket?delete`: the keys are in the XML body.
    DeleteObjects => "s3:DeleteObject",

    // Objects
    /// `GET /bucket/key`
    GetObject => "s3:GetObject",
    /// `HEAD /bucket/key`
    HeadObject => "s3:GetObject",
    /// `PUT /bucket/key`
    PutObject => "s3:PutObject",
    /// `PUT /bucket/key` with `x-amz-copy-source`
    CopyObject => "s3:PutObject",
    /// `DELETE /bucket/key`
    DeleteObject => "s3:DeleteObject",
    /// `GET /bucket/key?attributes`
    GetObjectAttributes => "s3:GetObjectAttributes",
    /// `POST /bucket/key?restore`
    RestoreObject => "s3:RestoreObject",
    /// `POST /bucket/key?select&select-type=2`
    SelectObjectContent => "s3:GetObject",
    /// `GET /bucket/key?torrent`
    GetObjectTorrent => "s3:GetObjectTorrent",
    /// `GET /bucket/key?acl`
    GetObjectAcl => "s3:GetObjectAcl",
    /// `PUT /bucket/key?acl`
    PutObjectAcl => "s3:PutObjectAcl",
    /// `GET /bucket/key?tagging`
    GetObjectTagging => "s3:GetObjectTagging",
    /// `PUT /bucket/key?tagging`
    PutObjectTagging => "s3:PutObjectTagging",
    /// `DELETE /bucket/key?tagging`
    DeleteObjectTagging => "s3:DeleteObjectTagging",
    /// `GET /bucket/key?retention`
    GetObjectRetention => "s3:GetObjectRetention",
    /// `PUT /bucket/key?retention`
    PutObjectRetention => "s3:PutObjectRetention",
    /// `GET /bucket/key?legal-hold`
    GetObjectLegalHold => "s3:GetObjectLegalHold",
    /// `PUT /bucket/key?legal-hold`
    PutObjectLegalHold => "s3:PutObjectLegalHold",

    // Multipart uploads
    /// `POST /bucket/key?uploads`
    CreateMultipartUpload => "s3:PutObject",
    /// `PUT /bucket/key?partNumber=&uploadId=`
    UploadPart => "s3:PutObject",
    /// `PUT /bucket/key?partNumber=&uploadId=` with `x-amz-copy-source`
    UploadPartCopy => "s3:PutObject",
    /// `POST /bucket/key?uploadId=`
    CompleteMultipartUpload => "s3:PutObject",
    /// `DELETE /bucket/key?uploadId=`
    AbortMultipartUpload => "s3:AbortMultipartUpload",
    /// `GET /bucket/key?uploadId=`
    ListParts => "s3:ListMultipartUploadParts",
}

impl S3Operation {
    /// Whether the operation reads or writes object bodies (the operations whose bodies must
    /// stream and may be large).
    pub const fn has_object_body(self) -> bool {
        matches!(
            self,
            Self::GetObject | Self::PutObject | Self::UploadPart | Self::SelectObjectContent
        )
    }

    /// Whether the operation lists the objects of a bucket (and so reads a `prefix`).
    pub const fn is_object_listing(self) -> bool {
        matches!(
            self,
            Self::ListObjects
                | Self::ListObjectsV2
                | Self::ListObjectVersions
                | Self::ListMultipartUploads
        )
    }
}

impl fmt::Display for S3Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_operation_has_an_s3_action_and_unique_name() {
        let mut names = std::collections::HashSet::new();
        for op in S3Operation::ALL {
            assert!(op.iam_action().unwrap().starts_with("s3:"), "{op}");
            assert!(names.insert(op.name()), "duplicate {op}");
        }
        assert_eq!(S3Operation::Unknown.iam_action(), None);
        assert!(S3Operation::ALL.len() > 90);
    }
}
