#!/usr/bin/env python3
"""Small client programs for `tests/e2e_gateway.rs`, one per subcommand.

- `boto3`: create a bucket, put an object (the bytes of `--data-file`), get it back, list
  it, head it; unsigned, or signed with `--access-key`/`--secret-key`/`--session-token`;
  `--verify` names the CA bundle for an https endpoint; `--presign` also fetches the object
  with a presigned GET URL (urllib).
- `tls-untrusted`: connects to an https endpoint trusting only the default CA store (certifi
  for botocore, the system store for `ssl`) and expects certificate verification to fail.
- `slow-download`: GETs `--path` (an object's presigned URL, path and query) with
  `http.client`, reads its head and the first MiB, prints `in flight`, waits for a line on
  stdin, then reads the rest and writes it to `--out`.
- `delete-objects`: boto3 `delete_objects` of `--keys` in `--bucket`; with `--expect-error CODE`
  the call must fail with that error code, otherwise every key must be deleted.
- `minio`: the MinIO SDK (minio-py): make_bucket, bucket_exists, put_object, get_object,
  stat_object, list_objects, remove_object, remove_bucket.

Each exits non-zero with a traceback on the first failed check and prints
`<subcommand>: all checks passed` at the end.
"""

import argparse
import hashlib
import http.client
import io
import socket
import ssl
import sys
import urllib.request

MIB = 1024 * 1024


def step(msg):
    print(f"ok: {msg}", flush=True)


def expect(actual, expected, what):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def boto3_client(args):
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    creds = {}
    if args.access_key:
        creds = {
            "aws_access_key_id": args.access_key,
            "aws_secret_access_key": args.secret_key,
        }
        if args.session_token:
            creds["aws_session_token"] = args.session_token
    return boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        verify=args.verify if args.verify else True,
        **creds,
        config=Config(
            signature_version="s3v4" if args.access_key else UNSIGNED,
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 1},
            connect_timeout=10,
            read_timeout=60,
        ),
    )


def cmd_boto3(args):
    with open(args.data_file, "rb") as f:
        data = f.read()
    s3 = boto3_client(args)
    s3.create_bucket(Bucket=args.bucket)
    step(f"create bucket {args.bucket}")
    put = s3.put_object(Bucket=args.bucket, Key=args.key, Body=data)
    expect(put["ETag"], '"%s"' % hashlib.md5(data).hexdigest(), "ETag of the PUT")
    step(f"put {args.key} ({len(data)} bytes)")
    got = s3.get_object(Bucket=args.bucket, Key=args.key)
    body = got["Body"].read()
    expect(len(body), len(data), "length of the GET")
    expect(body == data, True, "the GET returns the bytes put")
    expect(got["ContentLength"], len(data), "ContentLength of the GET")
    step("get: bytes equal")
    listed = s3.list_objects_v2(Bucket=args.bucket)
    keys = [(o["Key"], o["Size"]) for o in listed.get("Contents", [])]
    expect(keys, [(args.key, len(data))], "list_objects_v2 keys and sizes")
    step("list_objects_v2")
    head = s3.head_object(Bucket=args.bucket, Key=args.key)
    expect(head["ContentLength"], len(data), "HEAD ContentLength")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    if args.bucket not in names:
        raise AssertionError(f"list_buckets does not list {args.bucket}: {names}")
    step("head_object, list_buckets")
    if args.presign:
        url = s3.generate_presigned_url(
            "get_object", Params={"Bucket": args.bucket, "Key": args.key}, ExpiresIn=600
        )
        print(f"presigned URL: {url}", flush=True)
        context = ssl.create_default_context(cafile=args.verify) if args.verify else None
        with urllib.request.urlopen(url, context=context, timeout=60) as resp:
            expect(resp.status, 200, "status of the presigned GET")
            expect(resp.read() == data, True, "the presigned GET returns the bytes put")
        step("presigned GET")


def cmd_tls_untrusted(args):
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.exceptions import SSLError

    s3 = boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}),
    )
    try:
        s3.list_buckets()
    except SSLError as e:
        print(f"botocore SSLError: {e}", flush=True)
        if "CERTIFICATE_VERIFY_FAILED" not in str(e):
            raise AssertionError(f"not a certificate verification failure: {e}") from e
    else:
        raise AssertionError("list_buckets succeeded without trusting the gateway's CA")
    step("boto3 without the CA: botocore SSLError, CERTIFICATE_VERIFY_FAILED")

    # The same with the ssl module, to name the exact verification error.
    context = ssl.create_default_context()
    try:
        with socket.create_connection((args.host, args.port), timeout=10) as sock:
            with context.wrap_socket(sock, server_hostname=args.host):
                pass
    except ssl.SSLCertVerificationError as e:
        print(
            f"ssl: verify_code={e.verify_code} verify_message={e.verify_message!r}", flush=True
        )
        expect(e.verify_code, 20, "OpenSSL verify code (X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY)")
    else:
        raise AssertionError("the TLS handshake succeeded without trusting the gateway's CA")
    step("ssl without the CA: SSLCertVerificationError, unable to get local issuer certificate")

    # With the CA the same handshake succeeds and names the host.
    context = ssl.create_default_context(cafile=args.ca)
    with socket.create_connection((args.host, args.port), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname=args.host) as tls:
            print(f"ssl with the CA: {tls.version()} alpn={tls.selected_alpn_protocol()}")
    step("ssl with the CA: handshake succeeds")


def cmd_slow_download(args):
    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
    conn.request("GET", args.path)
    resp = conn.getresponse()
    expect(resp.status, 200, "status of the GET")
    length = int(resp.getheader("Content-Length"))
    first = resp.read(MIB)
    expect(len(first), MIB, "length of the first read")
    print(f"in flight: status={resp.status} content-length={length}", flush=True)
    line = sys.stdin.readline()
    expect(line.strip(), "go", "the line on stdin")
    chunks = [first]
    while True:
        chunk = resp.read(4 * MIB)
        if not chunk:
            break
        chunks.append(chunk)
    body = b"".join(chunks)
    expect(len(body), length, "bytes read after the signal")
    with open(args.out, "wb") as f:
        f.write(body)
    conn.close()
    step(f"read {len(body)} bytes")


def cmd_delete_objects(args):
    from botocore.exceptions import ClientError

    s3 = boto3_client(args)
    objects = [{"Key": key} for key in args.keys]
    try:
        resp = s3.delete_objects(Bucket=args.bucket, Delete={"Objects": objects})
    except ClientError as e:
        code = e.response["Error"]["Code"]
        print(f"delete_objects failed: {code}: {e}", flush=True)
        expect(code, args.expect_error, "the error code of delete_objects")
        step(f"delete_objects refused with {code}")
        return
    if args.expect_error:
        raise AssertionError(f"delete_objects succeeded, expected {args.expect_error}: {resp}")
    deleted = sorted(d["Key"] for d in resp.get("Deleted", []))
    expect(resp.get("Errors", []), [], "the errors of delete_objects")
    expect(deleted, sorted(args.keys), "the keys delete_objects deleted")
    step(f"delete_objects deleted {deleted}")


def cmd_minio(args):
    from minio import Minio

    with open(args.data_file, "rb") as f:
        data = f.read()
    client = Minio(
        args.endpoint,
        access_key=args.access_key,
        secret_key=args.secret_key,
        secure=False,
    )
    bucket, key = args.bucket, args.key
    expect(client.bucket_exists(bucket), False, "bucket_exists before make_bucket")
    client.make_bucket(bucket)
    expect(client.bucket_exists(bucket), True, "bucket_exists after make_bucket")
    step(f"make_bucket {bucket}, bucket_exists")
    put = client.put_object(bucket, key, io.BytesIO(data), len(data))
    expect(put.etag, hashlib.md5(data).hexdigest(), "ETag of put_object")
    step(f"put_object {key} ({len(data)} bytes)")
    resp = client.get_object(bucket, key)
    try:
        body = resp.read()
    finally:
        resp.close()
        resp.release_conn()
    expect(body == data, True, "get_object returns the bytes put")
    stat = client.stat_object(bucket, key)
    expect(stat.size, len(data), "stat_object size")
    step("get_object: bytes equal; stat_object")
    listed = [(o.object_name, o.size) for o in client.list_objects(bucket, recursive=True)]
    expect(listed, [(key, len(data))], "list_objects recursive")
    top = [o.object_name for o in client.list_objects(bucket)]
    expect(top, [key.split("/")[0] + "/"] if "/" in key else [key], "list_objects top level")
    step("list_objects")
    client.remove_object(bucket, key)
    expect(list(client.list_objects(bucket, recursive=True)), [], "list_objects after remove")
    client.remove_bucket(bucket)
    expect(client.bucket_exists(bucket), False, "bucket_exists after remove_bucket")
    step("remove_object, remove_bucket")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("boto3")
    b.add_argument("--endpoint", required=True)
    b.add_argument("--bucket", required=True)
    b.add_argument("--key", required=True)
    b.add_argument("--data-file", required=True)
    b.add_argument("--verify", help="CA bundle for an https endpoint")
    b.add_argument("--access-key")
    b.add_argument("--secret-key")
    b.add_argument("--session-token")
    b.add_argument("--presign", action="store_true")

    t = sub.add_parser("tls-untrusted")
    t.add_argument("--endpoint", required=True)
    t.add_argument("--host", required=True)
    t.add_argument("--port", type=int, required=True)
    t.add_argument("--ca", required=True)

    s = sub.add_parser("slow-download")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--path", required=True)
    s.add_argument("--out", required=True)

    d = sub.add_parser("delete-objects")
    d.add_argument("--endpoint", required=True)
    d.add_argument("--bucket", required=True)
    d.add_argument("--keys", nargs="+", required=True)
    d.add_argument("--access-key", required=True)
    d.add_argument("--secret-key", required=True)
    d.add_argument("--expect-error")
    d.set_defaults(verify=None, session_token=None)

    m = sub.add_parser("minio")
    m.add_argument("--endpoint", required=True, help="host:port")
    m.add_argument("--bucket", required=True)
    m.add_argument("--key", required=True)
    m.add_argument("--data-file", required=True)
    m.add_argument("--access-key", required=True)
    m.add_argument("--secret-key", required=True)

    args = p.parse_args()
    {
        "boto3": cmd_boto3,
        "tls-untrusted": cmd_tls_untrusted,
        "slow-download": cmd_slow_download,
        "delete-objects": cmd_delete_objects,
        "minio": cmd_minio,
    }[args.command](args)
    print(f"{args.command}: all checks passed", flush=True)


if __name__ == "__main__":
    sys.exit(main())
