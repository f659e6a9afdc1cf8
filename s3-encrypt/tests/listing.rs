//! Rewriting listing bodies: sizes and upload ids change, every other byte stays.

use std::collections::HashMap;

use s3_encrypt::EncryptError;
use s3_encrypt::listing::{ListingKind, SizeEntry, rewrite_listing};

/// What the size callback saw, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    stored_size: u64,
    key: Option<String>,
    version_id: Option<String>,
    etag: Option<String>,
    part_number: Option<u32>,
    upload_id: Option<String>,
}

impl Seen {
    fn of(entry: &SizeEntry<'_>) -> Self {
        Self {
            stored_size: entry.stored_size,
            key: entry.key.map(str::to_owned),
            version_id: entry.version_id.map(str::to_owned),
            etag: entry.etag.map(str::to_owned),
            part_number: entry.part_number,
            upload_id: entry.upload_id.map(str::to_owned),
        }
    }
}

/// Rewrites with sizes `stored - 100` and upload ids prefixed with `gw-`, recording the
/// size entries and upload ids the callbacks saw.
fn rewrite(
    body: &str,
    kind: ListingKind,
) -> (Result<Vec<u8>, EncryptError>, Vec<Seen>, Vec<String>) {
    let mut seen = Vec::new();
    let mut ids = Vec::new();
    let out = rewrite_listing(
        body.as_bytes(),
        kind,
        &mut |entry| {
            assert_eq!(entry.kind, kind);
            seen.push(Seen::of(&entry));
            Ok(entry.stored_size - 100)
        },
        &mut |id| {
            ids.push(id.to_owned());
            format!("gw-{id}")
        },
    );
    (out, seen, ids)
}

fn rewrite_ok(body: &str, kind: ListingKind) -> (String, Vec<Seen>, Vec<String>) {
    let (out, seen, ids) = rewrite(body, kind);
    let out = String::from_utf8(out.expect("rewrite succeeds")).expect("UTF-8 output");
    (out, seen, ids)
}

fn object(key: &str, etag: &str, size: u64) -> Seen {
    Seen {
        stored_size: size,
        key: Some(key.to_owned()),
        version_id: None,
        etag: Some(etag.to_owned()),
        part_number: None,
        upload_id: None,
    }
}

fn malformed(result: Result<Vec<u8>, EncryptError>) {
    match result {
        Err(EncryptError::Malformed(_)) => {}
        other => panic!("expected Malformed, got {other:?}"),
    }
}

const LIST_V2: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>example-bucket</Name>
  <Prefix>photos%2F</Prefix>
  <KeyCount>3</KeyCount>
  <MaxKeys>1000</MaxKeys>
  <Delimiter>%2F</Delimiter>
  <EncodingType>url</EncodingType>
  <IsTruncated>false</IsTruncated>
  <Contents>
    <Key>photos%2F2024%2Fa%26b.jpg</Key>
    <LastModified>2024-05-01T12:00:00.000Z</LastModified>
    <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag>
    <ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm>
    <ChecksumType>FULL_OBJECT</ChecksumType>
    <Size>1130</Size>
    <Owner>
      <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
      <DisplayName>owner</DisplayName>
    </Owner>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents>
    <Key>photos%2Fempty</Key>
    <LastModified>2024-05-01T12:00:01.000Z</LastModified>
    <ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag>
    <Size>100</Size>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
  <Contents>
    <Key>photos%2Fbig.bin</Key>
    <LastModified>2024-05-01T12:00:02.000Z</LastModified>
    <ETag>&quot;1c6a4bd2a1b2a3c4d5e6f7a8b9c0d1e2-3&quot;</ETag>
    <ChecksumAlgorithm>CRC32</ChecksumAlgorithm>
    <Size>15728740</Size>
    <StorageClass>INTELLIGENT_TIERING</StorageClass>
  </Contents>
  <CommonPrefixes>
    <Prefix>photos%2F2023%2F</Prefix>
  </CommonPrefixes>
</ListBucketResult>"#;

#[test]
fn list_objects_v2_sizes_rewritten_everything_else_identical() {
    let (out, seen, ids) = rewrite_ok(LIST_V2, ListingKind::ListObjectsV2);
    let expected = LIST_V2
        .replace("<Size>1130</Size>", "<Size>1030</Size>")
        .replace("<Size>100</Size>", "<Size>0</Size>")
        .replace("<Size>15728740</Size>", "<Size>15728640</Size>");
    assert_eq!(out, expected);
    // Keys are as listed (still URL-encoded), ETags unescaped with their quotes.
    assert_eq!(
        seen,
        vec![
            object(
                "photos%2F2024%2Fa%26b.jpg",
                "\"9b2cf535f27731c974343645a3985328\"",
                1130
            ),
            object(
                "photos%2Fempty",
                "\"d41d8cd98f00b204e9800998ecf8427e\"",
                100
            ),
            object(
                "photos%2Fbig.bin",
                "\"1c6a4bd2a1b2a3c4d5e6f7a8b9c0d1e2-3\"",
                15_728_740
            ),
        ]
    );
    assert!(ids.is_empty());
}

#[test]
fn list_objects_v1_entities_order_and_foreign_sizes() {
    // Compact, as AWS sends it; Size before Key in one entry; a key with `&amp;`; `<Size>`
    // and `<Contents>` elements outside the targeted path.
    let body = concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        "\n",
        r#"<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">"#,
        "<Name>b</Name><Prefix></Prefix><Marker></Marker><NextMarker>z&amp;z</NextMarker>",
        "<MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>",
        "<Size>777</Size>",
        "<Contents><Size>300</Size><ETag>&quot;e1&quot;</ETag><Key>a&amp;b &lt;c&gt;.txt</Key>",
        "<LastModified>2024-01-01T00:00:00.000Z</LastModified>",
        "<Owner><ID>o</ID><Size>5</Size></Owner><StorageClass>STANDARD</StorageClass></Contents>",
        "<Contents><Key>z&amp;z</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>",
        "<ETag>&quot;e2&quot;</ETag><Size>200</Size><StorageClass>STANDARD</StorageClass></Contents>",
        "<Extra><Contents><Size>999</Size></Contents></Extra>",
        "<CommonPrefixes><Prefix>dir/</Prefix></CommonPrefixes>",
        "</ListBucketResult>",
    );
    let (out, seen, _) = rewrite_ok(body, ListingKind::ListObjects);
    let expected = body
        .replace("<Size>300</Size>", "<Size>200</Size>")
        .replace(
            "<Size>200</Size><StorageClass>",
            "<Size>100</Size><StorageClass>",
        );
    assert_eq!(out, expected);
    assert!(out.contains("<Size>777</Size>"));
    assert!(out.contains("<Owner><ID>o</ID><Size>5</Size></Owner>"));
    assert!(out.contains("<Extra><Contents><Size>999</Size></Contents></Extra>"));
    assert_eq!(
        seen,
        vec![
            object("a&b <c>.txt", "\"e1\"", 300),
            object("z&z", "\"e2\"", 200)
        ]
    );
}

#[test]
fn namespace_prefixes_are_ignored() {
    let body = concat!(
        r#"<s3:ListBucketResult xmlns:s3="http://s3.amazonaws.com/doc/2006-03-01/">"#,
        "<s3:Contents><s3:Key>k</s3:Key><s3:Size>150</s3:Size></s3:Contents>",
        "</s3:ListBucketResult>",
    );
    let (out, seen, _) = rewrite_ok(body, ListingKind::ListObjectsV2);
    assert_eq!(out, body.replace(">150<", ">50<"));
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].key.as_deref(), Some("k"));
}

#[test]
fn unchanged_sizes_keep_the_document_byte_identical() {
    let out = rewrite_listing(
        LIST_V2.as_bytes(),
        ListingKind::ListObjectsV2,
        &mut |entry| Ok(entry.stored_size),
        &mut |id| id.to_owned(),
    )
    .expect("rewrite succeeds");
    assert_eq!(out, LIST_V2.as_bytes());
}

const VERSIONS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bucket</Name><Prefix>my</Prefix><KeyMarker></KeyMarker><VersionIdMarker></VersionIdMarker><MaxKeys>5</MaxKeys><IsTruncated>false</IsTruncated><Version><Key>my-image.jpg</Key><VersionId>3/L4kqtJl40Nr8X8gdRQBpUMLUo</VersionId><IsLatest>true</IsLatest><LastModified>2009-10-12T17:50:30.000Z</LastModified><ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><ChecksumAlgorithm>SHA256</ChecksumAlgorithm><Size>434334</Size><StorageClass>STANDARD</StorageClass><Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID><DisplayName>mtd@amazon.com</DisplayName></Owner></Version><DeleteMarker><Key>my-second-image.jpg</Key><VersionId>03jpff543dhffds434rfdsFDN943fdsFkdmqnh892</VersionId><IsLatest>true</IsLatest><LastModified>2009-11-12T17:50:30.000Z</LastModified><Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID><DisplayName>mtd@amazon.com</DisplayName></Owner></DeleteMarker><Version><Key>my-second-image.jpg</Key><VersionId>QUpfdndhfd8438MNFDN93jdnJFkdmqnh893</VersionId><IsLatest>false</IsLatest><LastModified>2009-10-10T17:50:30.000Z</LastModified><ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>166434</Size><StorageClass>STANDARD</StorageClass><Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID><DisplayName>mtd@amazon.com</DisplayName></Owner></Version><CommonPrefixes><Prefix>my/</Prefix></CommonPrefixes></ListVersionsResult>"#;

#[test]
fn list_object_versions_rewrites_versions_not_delete_markers() {
    let (out, seen, ids) = rewrite_ok(VERSIONS, ListingKind::ListObjectVersions);
    let expected = VERSIONS
        .replace("<Size>434334</Size>", "<Size>434234</Size>")
        .replace("<Size>166434</Size>", "<Size>166334</Size>");
    assert_eq!(out, expected);
    let start = VERSIONS.find("<DeleteMarker>").expect("delete marker");
    let end = VERSIONS.find("</DeleteMarker>").expect("delete marker end");
    assert!(out.contains(&VERSIONS[start..end]));
    assert_eq!(
        seen,
        vec![
            Seen {
                stored_size: 434_334,
                key: Some("my-image.jpg".into()),
                version_id: Some("3/L4kqtJl40Nr8X8gdRQBpUMLUo".into()),
                etag: Some("\"fba9dede5f27731c9771645a39863328\"".into()),
                part_number: None,
                upload_id: None,
            },
            Seen {
                stored_size: 166_434,
                key: Some("my-second-image.jpg".into()),
                version_id: Some("QUpfdndhfd8438MNFDN93jdnJFkdmqnh893".into()),
                etag: Some("\"9b2cf535f27731c974343645a3985328\"".into()),
                part_number: None,
                upload_id: None,
            },
        ]
    );
    assert!(ids.is_empty());
}

const PARTS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>example-bucket</Bucket>
  <Key>dir/a&amp;b.bin</Key>
  <UploadId>XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA&amp;x</UploadId>
  <Initiator>
    <ID>arn:aws:iam::111122223333:user/some-user-11116a31-17b5-4fb7-9df5-b288870f11xx</ID>
    <DisplayName>umat-user-11116a31-17b5-4fb7-9df5-b288870f11xx</DisplayName>
  </Initiator>
  <Owner>
    <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
    <DisplayName>someName</DisplayName>
  </Owner>
  <StorageClass>STANDARD</StorageClass>
  <PartNumberMarker>1</PartNumberMarker>
  <NextPartNumberMarker>3</NextPartNumberMarker>
  <MaxParts>2</MaxParts>
  <IsTruncated>true</IsTruncated>
  <ChecksumAlgorithm>CRC32</ChecksumAlgorithm>
  <Part>
    <PartNumber>2</PartNumber>
    <LastModified>2010-11-10T20:48:34.000Z</LastModified>
    <ETag>"7778aef83f66abc1fa1e8477f296d394"</ETag>
    <ChecksumCRC32>Ll1Jsw==</ChecksumCRC32>
    <Size>10485860</Size>
  </Part>
  <Part>
    <Size>10485860</Size>
    <ETag>"aaaa18db4cc2f85cedef654fccc4a4x8"</ETag>
    <PartNumber>3</PartNumber>
    <LastModified>2010-11-10T20:48:33.000Z</LastModified>
  </Part>
</ListPartsResult>"#;

#[test]
fn list_parts_rewrites_part_sizes_and_the_upload_id() {
    let (out, seen, ids) = rewrite_ok(PARTS, ListingKind::ListParts);
    let expected = PARTS.replace("<Size>10485860</Size>", "<Size>10485760</Size>").replace(
        "<UploadId>XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA&amp;x</UploadId>",
        "<UploadId>gw-XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA&amp;x</UploadId>",
    );
    assert_eq!(out, expected);
    let backend_id = "XXBsb2FkIElEIGZvciBlbHZpbmcncyVcdS1tb3ZpZS5tMnRzEEEwbG9hZA&x";
    assert_eq!(ids, vec![backend_id.to_owned()]);
    let part = |number, etag: &str| Seen {
        stored_size: 10_485_860,
        key: Some("dir/a&b.bin".into()),
        version_id: None,
        etag: Some(etag.into()),
        part_number: Some(number),
        upload_id: Some(backend_id.into()),
    };
    assert_eq!(
        seen,
        vec![
            part(2, "\"7778aef83f66abc1fa1e8477f296d394\""),
            part(3, "\"aaaa18db4cc2f85cedef654fccc4a4x8\"")
        ]
    );
}

const UPLOADS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>bucket</Bucket>
  <KeyMarker></KeyMarker>
  <UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>my-movie.m2ts</NextKeyMarker>
  <NextUploadIdMarker>YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ</NextUploadIdMarker>
  <MaxUploads>3</MaxUploads>
  <IsTruncated>true</IsTruncated>
  <Upload>
    <Key>my-divisor</Key>
    <UploadId>XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw</UploadId>
    <Initiator>
      <ID>arn:aws:iam::111122223333:user/user1-11111a31-17b5-4fb7-9df5-b111111f13de</ID>
      <DisplayName>user1-11111a31-17b5-4fb7-9df5-b111111f13de</DisplayName>
    </Initiator>
    <Owner>
      <ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID>
      <DisplayName>OwnerDisplayName</DisplayName>
    </Owner>
    <StorageClass>STANDARD</StorageClass>
    <Initiated>2010-11-10T20:48:33.000Z</Initiated>
    <ChecksumAlgorithm>CRC32</ChecksumAlgorithm>
  </Upload>
  <Upload>
    <Key>my-movie.m2ts</Key>
    <UploadId>YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ</UploadId>
    <Size>12345</Size>
    <StorageClass>STANDARD</StorageClass>
    <Initiated>2010-11-10T20:48:33.000Z</Initiated>
  </Upload>
  <Other><UploadId>not-an-upload</UploadId></Other>
  <CommonPrefixes>
    <Prefix>photos/</Prefix>
  </CommonPrefixes>
</ListMultipartUploadsResult>"#;

#[test]
fn list_multipart_uploads_maps_upload_ids_and_markers() {
    let (out, seen, ids) = rewrite_ok(UPLOADS, ListingKind::ListMultipartUploads);
    let expected = UPLOADS
        .replace("<NextUploadIdMarker>YW55", "<NextUploadIdMarker>gw-YW55")
        .replace("<UploadId>XMgb", "<UploadId>gw-XMgb")
        .replace("<UploadId>YW55", "<UploadId>gw-YW55");
    assert_eq!(out, expected);
    // The empty marker stays empty; a foreign UploadId and a Size stay.
    assert!(out.contains("<UploadIdMarker></UploadIdMarker>"));
    assert!(out.contains("<Other><UploadId>not-an-upload</UploadId></Other>"));
    assert!(out.contains("<Size>12345</Size>"));
    assert!(seen.is_empty());
    assert_eq!(
        ids,
        vec![
            "YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ".to_owned(),
            "XMgbGlrZSBlbHZpbmcncyBub3QgaGF2aW5nIG11Y2ggbHVjaw".to_owned(),
            "YW55IGlkZWEgd2h5IGVsdmluZydzIHVwbG9hZCBmYWlsZWQ".to_owned(),
        ]
    );
}

#[test]
fn upload_ids_are_unescaped_for_the_mapping_and_escaped_back() {
    let body = concat!(
        "<ListMultipartUploadsResult><UploadIdMarker>a&#38;b</UploadIdMarker>",
        "<Upload><UploadId>x&lt;y</UploadId></Upload><Upload><UploadId/></Upload>",
        "</ListMultipartUploadsResult>",
    );
    let mut seen = Vec::new();
    let out = rewrite_listing(
        body.as_bytes(),
        ListingKind::ListMultipartUploads,
        &mut |_| panic!("no sizes in ListMultipartUploads"),
        &mut |id| {
            seen.push(id.to_owned());
            if id == "a&b" {
                id.to_owned()
            } else {
                format!("{id}&<>")
            }
        },
    )
    .expect("rewrite succeeds");
    assert_eq!(seen, vec!["a&b".to_owned(), "x<y".to_owned()]);
    // An unchanged id keeps its original bytes (`&#38;`), a changed one is escaped.
    let expected = concat!(
        "<ListMultipartUploadsResult><UploadIdMarker>a&#38;b</UploadIdMarker>",
        "<Upload><UploadId>x&lt;y&amp;&lt;&gt;</UploadId></Upload><Upload><UploadId/></Upload>",
        "</ListMultipartUploadsResult>",
    );
    assert_eq!(String::from_utf8(out).expect("UTF-8"), expected);
}

#[test]
fn size_callback_error_aborts() {
    let mut calls = 0;
    let result = rewrite_listing(
        LIST_V2.as_bytes(),
        ListingKind::ListObjectsV2,
        &mut |entry| {
            calls += 1;
            if entry.stored_size == 100 {
                Err(EncryptError::InvalidSize(entry.stored_size))
            } else {
                Ok(1)
            }
        },
        &mut |id| id.to_owned(),
    );
    assert_eq!(result, Err(EncryptError::InvalidSize(100)));
    assert_eq!(calls, 2);
}

#[test]
fn malformed_documents_are_refused() {
    let v2 = ListingKind::ListObjectsV2;
    let entry = |size: &str| {
        format!("<ListBucketResult><Contents><Key>k</Key>{size}</Contents></ListBucketResult>")
    };
    for size in [
        "<Size>abc</Size>",
        "<Size>-1</Size>",
        "<Size></Size>",
        "<Size/>",
        "<Size>18446744073709551616</Size>",
        "<Size>1.5</Size>",
        "<Size>1<b>2</b></Size>",
        "<Size>1<!-- c -->2</Size>",
        "<Size>1</Size><Size>2</Size>",
        "<Size>&bogus;</Size>",
    ] {
        let (result, seen, _) = rewrite(&entry(size), v2);
        malformed(result);
        assert!(
            seen.is_empty(),
            "no callback before the document is checked"
        );
    }
    for body in [
        "",
        "   ",
        "not xml",
        "<ListBucketResult>",
        "<ListBucketResult><Contents><Size>1</Size></ListBucketResult>",
        "<ListBucketResult></Contents></ListBucketResult>",
        "<ListBucketResult><Contents><Size>1</Size></Contents>",
        "<ListBucketResult/><ListBucketResult/>",
        "<ListBucketResult/>trailing",
        "<ListBucketResult><Name>a&b</Name></ListBucketResult>",
        "<ListBucketResult><Name>&nbsp;</Name></ListBucketResult>",
        "<ListBucketResult><Contents><Size>5</Size></Contents></ListBucketResult></x>",
        "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
        "<ListVersionsResult></ListVersionsResult>",
        "<ListBucketResult><Name attr=\"x>y</Name></ListBucketResult>",
    ] {
        malformed(rewrite(body, v2).0);
    }
    malformed(
        rewrite_listing(
            b"<ListBucketResult><Name>\xff</Name></ListBucketResult>",
            v2,
            &mut |_| Ok(0),
            &mut |id| id.to_owned(),
        )
        .map(|_| Vec::new()),
    );
    // A part number that is not a number, a duplicated top-level upload id.
    malformed(
        rewrite(
            "<ListPartsResult><Part><PartNumber>x</PartNumber><Size>1</Size></Part></ListPartsResult>",
            ListingKind::ListParts,
        )
        .0,
    );
    malformed(
        rewrite(
            "<ListPartsResult><UploadId>a</UploadId><UploadId>b</UploadId></ListPartsResult>",
            ListingKind::ListParts,
        )
        .0,
    );
}

#[test]
fn empty_listings_are_unchanged() {
    let v2 = concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        "\n",
        r#"<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">"#,
        "<Name>b</Name><Prefix>none/</Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys>",
        "<IsTruncated>false</IsTruncated></ListBucketResult>",
    );
    let parts = concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        "\n",
        r#"<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">"#,
        "<Bucket>b</Bucket><Key>k</Key><UploadId>u1</UploadId><MaxParts>1000</MaxParts>",
        "<IsTruncated>false</IsTruncated></ListPartsResult>",
    );
    for (body, kind, expected) in [
        (v2, ListingKind::ListObjectsV2, v2.to_owned()),
        (v2, ListingKind::ListObjects, v2.to_owned()),
        (
            "<ListBucketResult/>",
            ListingKind::ListObjects,
            "<ListBucketResult/>".to_owned(),
        ),
        (
            r#"<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>"#,
            ListingKind::ListObjectVersions,
            r#"<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>"#.to_owned(),
        ),
        (
            parts,
            ListingKind::ListParts,
            parts.replace("<UploadId>u1<", "<UploadId>gw-u1<"),
        ),
        (
            "<ListMultipartUploadsResult><UploadIdMarker/></ListMultipartUploadsResult>",
            ListingKind::ListMultipartUploads,
            "<ListMultipartUploadsResult><UploadIdMarker/></ListMultipartUploadsResult>".to_owned(),
        ),
    ] {
        let (out, seen, _) = rewrite_ok(body, kind);
        assert_eq!(out, expected);
        assert!(seen.is_empty());
    }
}

#[test]
fn a_thousand_entries() {
    let mut body = String::from(concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        "\n",
        r#"<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">"#,
        "<Name>b</Name><KeyCount>1000</KeyCount><MaxKeys>1000</MaxKeys>",
        "<IsTruncated>true</IsTruncated>",
    ));
    let mut expected = body.clone();
    let mut plaintext = HashMap::new();
    for i in 0..1000_u64 {
        let key = format!("dir/obj-{i:04}&amp;");
        let stored = 1000 + i * 7;
        let entry = |size: u64| {
            format!(
                "<Contents><Key>{key}</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>\
                 <ETag>&quot;{i:032x}&quot;</ETag><Size>{size}</Size>\
                 <StorageClass>STANDARD</StorageClass></Contents>"
            )
        };
        body.push_str(&entry(stored));
        expected.push_str(&entry(stored / 2));
        plaintext.insert(format!("dir/obj-{i:04}&"), stored / 2);
    }
    let tail = "<NextContinuationToken>t</NextContinuationToken></ListBucketResult>";
    body.push_str(tail);
    expected.push_str(tail);

    let mut calls = 0;
    let out = rewrite_listing(
        body.as_bytes(),
        ListingKind::ListObjectsV2,
        &mut |entry| {
            calls += 1;
            let key = entry.key.expect("key");
            assert_eq!(entry.etag.expect("etag").len(), 34, "quoted 32-digit ETag");
            Ok(plaintext[key])
        },
        &mut |id| id.to_owned(),
    )
    .expect("rewrite succeeds");
    assert_eq!(calls, 1000);
    assert_eq!(String::from_utf8(out).expect("UTF-8"), expected);
}

#[test]
fn entries_may_get_a_new_etag_and_keep_everything_else() {
    let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Contents><Key>a</Key><ETag>&quot;0123456789abcdef0123456789abcdef&quot;</ETag><Size>1056</Size></Contents><Contents><Key>b</Key><ETag>&quot;x-2&quot;</ETag><Size>1056</Size></Contents></ListBucketResult>"#;
    let out = s3_encrypt::listing::rewrite_listing_entries(
        body.as_bytes(),
        ListingKind::ListObjectsV2,
        &mut |entry| {
            let etag = entry
                .etag
                .filter(|e| e.len() == 34)
                .map(|e| format!("{}-0\"", &e[..33]));
            Ok((entry.stored_size - 32, etag))
        },
        &mut str::to_owned,
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        body.replace(
            "&quot;0123456789abcdef0123456789abcdef&quot;",
            "\"0123456789abcdef0123456789abcdef-0\""
        )
        .replace("<Size>1056</Size>", "<Size>1024</Size>")
    );
}
