#!/usr/bin/env python3
"""boto3 with its DEFAULT settings signing (SigV4) against the gateway, for
`tests/e2e_sigv4_clients.rs`. One subcommand per test:

- `workload`: a client with no signature or checksum configuration (only endpoint, region and
  keys; over https the CA comes from AWS_CA_BUNDLE) runs the foundation workload of
  `boto3_workload.py` (bucket, small and multi-MiB objects, full and ranged GETs, HEAD,
  listings with prefix and delimiter, copies and deletes of keys with spaces, `+`, `%` and
  unicode), then `upload_file` / `download_file` of a multi-MiB file with the default
  TransferConfig (multipart, concurrent parts and ranged GETs) and compares the bytes.
  A botocore `before-send` hook records the headers of every request sent; each is printed
  as a `request: {json}` line, and the set of `x-amz-content-sha256` values as
  `payload modes: [...]`. A request retried by botocore fails the run (a retry would hide
  a refused request).
- `presign`: URLs presigned by a client with `Config(signature_version="s3v4")` — PUT, then
  GET, of keys with spaces, `+` and unicode — used with urllib; then the default client's
  `generate_presigned_url`: SigV2 (`AWSAccessKeyId=`) must be refused with 400
  InvalidRequest naming signature_version='s3v4', SigV4 must work. Prints
  `default presign: sigv2` or `default presign: sigv4`.
- `bad-credentials`: a wrong secret gets SignatureDoesNotMatch, an unknown access key
  InvalidAccessKeyId, for several operations (botocore's `e.response['Error']['Code']`).
  botocore's default retries stay on: it does not retry a 403, so any retry (a lost answer
  or a dead connection) fails the run.

Over https, urllib trusts the CA through SSL_CERT_FILE (Python's default SSL context reads
it). Each exits non-zero with a traceback on the first failed check and prints
`<subcommand>: all checks passed` at the end.
"""

import argparse
import json
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from boto3_workload import MIB, expect, sha256, step, workload

# Headers worth printing for each request: how the payload is signed and framed.
RECORDED_HEADERS = (
    "x-amz-content-sha256",
    "content-encoding",
    "x-amz-trailer",
    "x-amz-decoded-content-length",
    "x-amz-sdk-checksum-algorithm",
    "x-amz-checksum-crc32",
    "x-amz-checksum-mode",
    "x-amz-checksum-algorithm",
    "range",
    "content-md5",
    "content-length",
    "transfer-encoding",
    "amz-sdk-request",
)


def default_client(endpoint, access_key, secret_key, **config):
    """boto3's defaults: no signature version, no checksum settings, default retries."""
    kw = {"config": Config(**config)} if config else {}
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        **kw,
    )


def header_str(value):
    return value.decode() if isinstance(value, bytes) else str(value)


class Recorder:
    """Records the headers of each request botocore sends (`before-send`)."""

    def __init__(self, s3):
        self.requests = []
        s3.meta.events.register("before-send.s3", self.before_send)

    def before_send(self, request, **_kwargs):
        url = urllib.parse.urlsplit(request.url)
        query = sorted(k for k, _ in urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        headers = {k.lower(): header_str(v) for k, v in request.headers.items()}
        entry = {"method": request.method, "path": url.path, "query": query}
        auth = headers.get("authorization", "")
        entry["authorization"] = auth.split(" ", 1)[0]
        for name in RECORDED_HEADERS:
            if name in headers:
                entry[name] = headers[name]
        self.requests.append(entry)

    def report(self):
        for entry in self.requests:
            print("request: " + json.dumps(entry, ensure_ascii=False), flush=True)
        retried = [r for r in self.requests if "attempt=1" not in r.get("amz-sdk-request", "attempt=1")]
        if retried:
            raise AssertionError(f"botocore retried {len(retried)} requests: {retried}")
        unsigned = [r for r in self.requests if r["authorization"] != "AWS4-HMAC-SHA256"]
        if unsigned:
            raise AssertionError(f"requests not signed with AWS4-HMAC-SHA256: {unsigned}")
        modes = sorted({r.get("x-amz-content-sha256", "<none>") for r in self.requests})
        # A hex SHA-256 stands for itself: print it as a kind.
        modes = sorted({"<sha256 hex>" if len(m) == 64 else m for m in modes})
        print("payload modes: " + json.dumps(modes), flush=True)


def cmd_workload(args):
    s3 = default_client(args.endpoint, args.access_key, args.secret_key)
    recorder = Recorder(s3)
    workload(s3, args.bucket, args.big_mib * MIB)

    # upload_file / download_file with the default TransferConfig: multipart above 8 MiB,
    # 8 MiB parts, up to 10 threads.
    bucket = args.bucket + "-transfer"
    s3.create_bucket(Bucket=bucket)
    data = os.urandom(args.transfer_mib * MIB)
    key = "transfer/big file ü+.bin"
    with tempfile.TemporaryDirectory() as tmp:
        up = os.path.join(tmp, "up.bin")
        down = os.path.join(tmp, "down.bin")
        with open(up, "wb") as f:
            f.write(data)
        s3.upload_file(up, bucket, key)
        head = s3.head_object(Bucket=bucket, Key=key)
        expect(head["ContentLength"], len(data), "HEAD after upload_file: ContentLength")
        parts = -(-len(data) // (8 * MIB))
        if not head["ETag"].endswith(f'-{parts}"'):
            raise AssertionError(f"upload_file: expected a {parts}-part ETag, got {head['ETag']}")
        s3.download_file(bucket, key, down)
        with open(down, "rb") as f:
            expect(sha256(f.read()), sha256(data), "sha256 of the downloaded file")
    step(f"upload_file/download_file of {args.transfer_mib} MiB ({parts} parts), sha256 equal")
    uploads = [r for r in recorder.requests if r["method"] == "PUT" and "partNumber" in r["query"]]
    expect(len(uploads), parts, "UploadPart requests")
    s3.delete_object(Bucket=bucket, Key=key)
    s3.delete_bucket(Bucket=bucket)
    recorder.report()


def http_fetch(method, url, data=None):
    """(status, body, error code or None) of a plain urllib request."""
    # urllib's default Content-Type for a body is application/x-www-form-urlencoded, which
    # moto's server (werkzeug) parses as a form: the object would be stored empty.
    headers = {"Content-Type": "application/octet-stream"} if data is not None else {}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read(), None
    except urllib.error.HTTPError as e:
        body = e.read()
        text = body.decode(errors="replace")
        code = text.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in text else None
        return e.code, body, code


def cmd_presign(args):
    s3 = default_client(args.endpoint, args.access_key, args.secret_key)
    s3.create_bucket(Bucket=args.bucket)
    v4 = default_client(args.endpoint, args.access_key, args.secret_key, signature_version="s3v4")
    for key in ["presigned/plain.txt", "presigned/with space + plus ü 日本.txt"]:
        body = ("presigned body of " + key).encode() * 50
        put_url = v4.generate_presigned_url(
            "put_object", Params={"Bucket": args.bucket, "Key": key}, ExpiresIn=600
        )
        if "X-Amz-Signature=" not in put_url:
            raise AssertionError(f"an s3v4 presigned URL without X-Amz-Signature: {put_url}")
        status, text, code = http_fetch("PUT", put_url, body)
        expect((status, code), (200, None), f"presigned PUT of {key!r}: {text!r}")
        expect(s3.get_object(Bucket=args.bucket, Key=key)["Body"].read(), body, f"object {key!r}")
        get_url = v4.generate_presigned_url(
            "get_object", Params={"Bucket": args.bucket, "Key": key}, ExpiresIn=600
        )
        status, got, code = http_fetch("GET", get_url)
        expect((status, code), (200, None), f"presigned GET of {key!r}")
        expect(got, body, f"presigned GET of {key!r}: bytes")
        step(f"s3v4 presigned PUT and GET of {key!r}")

    # A tampered presigned URL (another key) is refused.
    status, _, code = http_fetch("GET", get_url.replace("presigned/", "presigned/x", 1))
    expect((status, code), (403, "SignatureDoesNotMatch"), "presigned GET with another key")
    step("presigned GET of another key than signed: 403 SignatureDoesNotMatch")

    key = "presigned/plain.txt"
    url = s3.generate_presigned_url("get_object", Params={"Bucket": args.bucket, "Key": key})
    if "AWSAccessKeyId=" in url:
        print("default presign: sigv2", flush=True)
        status, text, code = http_fetch("GET", url)
        expect((status, code), (400, "InvalidRequest"), "default (SigV2) presigned GET")
        if "signature_version='s3v4'" not in text.decode():
            raise AssertionError(f"the SigV2 refusal does not name signature_version='s3v4': {text!r}")
        step("boto3's default presigned URL is SigV2: 400 InvalidRequest naming s3v4")
    elif "X-Amz-Signature=" in url:
        print("default presign: sigv4", flush=True)
        status, got, code = http_fetch("GET", url)
        expect((status, code), (200, None), "default (SigV4) presigned GET")
        expect(got, ("presigned body of " + key).encode() * 50, "default presigned GET: bytes")
        step("boto3's default presigned URL is SigV4 and works")
    else:
        raise AssertionError(f"a presigned URL neither SigV2 nor SigV4: {url}")

    for obj in s3.list_objects_v2(Bucket=args.bucket).get("Contents", []):
        s3.delete_object(Bucket=args.bucket, Key=obj["Key"])
    s3.delete_bucket(Bucket=args.bucket)


def error_code(call):
    try:
        call()
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]
    return 200, None


def cmd_bad_credentials(args):
    cases = {
        "wrong secret": (args.access_key, args.secret_key + "-wrong", "SignatureDoesNotMatch"),
        "unknown access key": ("E2EUNKNOWNKEY0000001", args.secret_key, "InvalidAccessKeyId"),
    }
    for what, (access_key, secret_key, code) in cases.items():
        s3 = default_client(args.endpoint, access_key, secret_key)
        recorder = Recorder(s3)
        b = args.bucket
        calls = {
            "list_buckets": lambda: s3.list_buckets(),
            "create_bucket": lambda: s3.create_bucket(Bucket=b),
            "put_object": lambda: s3.put_object(Bucket=b, Key="k", Body=b"x" * 1000),
            "get_object": lambda: s3.get_object(Bucket=b, Key="k"),
            "list_objects_v2": lambda: s3.list_objects_v2(Bucket=b, Prefix="a/"),
            "delete_objects": lambda: s3.delete_objects(
                Bucket=b, Delete={"Objects": [{"Key": "k"}]}
            ),
        }
        for name, call in calls.items():
            expect(error_code(call), (403, code), f"{what}: {name}")
        step(f"{what}: {', '.join(calls)} all 403 {code}")
        recorder.report()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for func in [cmd_workload, cmd_presign, cmd_bad_credentials]:
        s = sub.add_parser(func.__name__.removeprefix("cmd_").replace("_", "-"))
        s.set_defaults(func=func)
        for arg in ["--endpoint", "--bucket", "--access-key", "--secret-key"]:
            s.add_argument(arg, required=True)
        if func is cmd_workload:
            s.add_argument("--big-mib", type=int, default=6)
            s.add_argument("--transfer-mib", type=int, default=20)
    args = p.parse_args()
    args.func(args)
    print(f"{args.cmd}: all checks passed", flush=True)


if __name__ == "__main__":
    sys.exit(main())
