#!/usr/bin/env python3
"""A boto3 workload against an S3 endpoint (the gateway), checking every answer.

Creates a bucket, puts a small and a big object, reads them back (whole, by range, head),
lists with prefixes and delimiters (v1, v2, paginated), copies objects whose keys hold
spaces, unicode, `+` and `%`, deletes one and several objects and finally the bucket.

Requests are signed (SigV4) with `--access-key`/`--secret-key`, a static user of the
gateway; without them they are unsigned. With `--addressing virtual` the endpoint must be
`http://<domain>:<port>` and requests go to `<bucket>.<domain>`; when such names do not
resolve (glibc does not resolve `*.localhost` on every machine), `--resolve-to 127.0.0.1`
makes this process resolve every `*.<domain>` name to that address, so botocore's real
virtual-hosted requests (`Host: <bucket>.<domain>:<port>`) reach the gateway.

Exits non-zero with a traceback on the first failed check; prints
`boto3 workload: all checks passed` at the end.
"""

import argparse
import hashlib
import os
import socket
import sys

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

MIB = 1024 * 1024


def step(msg):
    print(f"ok: {msg}", flush=True)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def expect(actual, expected, what):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def resolve_domain_to(domain, address):
    """Make `<anything>.<domain>` and `<domain>` resolve to `address` in this process."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, bytes):
            host = host.decode()
        if host == domain or (host or "").endswith("." + domain):
            host = address
        return real_getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo


def make_client(endpoint, addressing, access_key, secret_key):
    creds = {}
    if access_key:
        creds = {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key}
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        **creds,
        config=Config(
            signature_version="s3v4" if access_key else UNSIGNED,
            s3={"addressing_style": addressing},
            retries={"total_max_attempts": 1},
            connect_timeout=10,
            read_timeout=120,
        ),
    )


def status_of(call):
    try:
        call()
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"]
    return 200


def list_v1(s3, bucket, **kw):
    r = s3.list_objects(Bucket=bucket, **kw)
    return (
        [o["Key"] for o in r.get("Contents", [])],
        [p["Prefix"] for p in r.get("CommonPrefixes", [])],
    )


def list_v2(s3, bucket, **kw):
    r = s3.list_objects_v2(Bucket=bucket, **kw)
    keys = [o["Key"] for o in r.get("Contents", [])]
    prefixes = [p["Prefix"] for p in r.get("CommonPrefixes", [])]
    expect(r["KeyCount"], len(keys) + len(prefixes), "list v2 KeyCount")
    return keys, prefixes


def list_all_v2_paginated(s3, bucket, page_size):
    keys, token = [], None
    while True:
        kw = {"MaxKeys": page_size}
        if token:
            kw["ContinuationToken"] = token
        r = s3.list_objects_v2(Bucket=bucket, **kw)
        page = [o["Key"] for o in r.get("Contents", [])]
        if len(page) > page_size:
            raise AssertionError(f"page of {len(page)} keys > MaxKeys={page_size}")
        keys += page
        if not r["IsTruncated"]:
            return keys
        token = r["NextContinuationToken"]


def workload(s3, bucket, big_size):
    s3.create_bucket(Bucket=bucket)
    expect(s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"], 200, "head bucket")
    step(f"create bucket {bucket}")

    # Small object.
    small = b"".join(b"line %04d of the small object\n" % i for i in range(100))
    s3.put_object(Bucket=bucket, Key="small.txt", Body=small, ContentType="text/plain")
    got = s3.get_object(Bucket=bucket, Key="small.txt")
    expect(sha256(got["Body"].read()), sha256(small), "sha256 of small.txt")
    expect(got["ContentLength"], len(small), "ContentLength of GET small.txt")
    step(f"put/get small object ({len(small)} bytes)")

    # Big object, one PUT.
    big = os.urandom(big_size)
    put = s3.put_object(Bucket=bucket, Key="big.bin", Body=big)
    expect(put["ETag"], '"%s"' % hashlib.md5(big).hexdigest(), "ETag of the big PUT")
    got = s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read()
    expect(len(got), len(big), "length of GET big.bin")
    expect(sha256(got), sha256(big), "sha256 of big.bin")
    del got
    step(f"put/get big object ({big_size} bytes), sha256 equal")

    # Ranges.
    r = s3.get_object(Bucket=bucket, Key="big.bin", Range="bytes=100-199")
    expect(r["ResponseMetadata"]["HTTPStatusCode"], 206, "status of a range GET")
    expect(r["ContentLength"], 100, "ContentLength of bytes=100-199")
    expect(r["ContentRange"], f"bytes 100-199/{big_size}", "ContentRange")
    expect(r["Body"].read(), big[100:200], "bytes 100-199 of big.bin")
    r = s3.get_object(Bucket=bucket, Key="small.txt", Range="bytes=100-199")
    expect(r["Body"].read(), small[100:200], "bytes 100-199 of small.txt")
    r = s3.get_object(Bucket=bucket, Key="big.bin", Range="bytes=-10")
    expect(r["Body"].read(), big[-10:], "last 10 bytes of big.bin")
    step("range GETs exact")

    # Head.
    h = s3.head_object(Bucket=bucket, Key="big.bin")
    expect(h["ContentLength"], big_size, "HEAD big.bin ContentLength")
    expect(h["ETag"], put["ETag"], "HEAD big.bin ETag")
    h = s3.head_object(Bucket=bucket, Key="small.txt")
    expect(h["ContentLength"], len(small), "HEAD small.txt ContentLength")
    expect(h["ContentType"], "text/plain", "HEAD small.txt ContentType")
    expect(status_of(lambda: s3.head_object(Bucket=bucket, Key="missing")), 404, "HEAD missing")
    step("head objects")
    del big

    # Listings.
    for key in ["dir/a.txt", "dir/sub/b.txt", "dir/sub/c.txt", "dir/other/d.txt", "top.txt"]:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    everything = sorted(
        ["big.bin", "small.txt", "dir/a.txt", "dir/sub/b.txt", "dir/sub/c.txt",
         "dir/other/d.txt", "top.txt"]
    )
    expect(list_v1(s3, bucket), (everything, []), "list v1, no prefix")
    expect(list_v2(s3, bucket), (everything, []), "list v2, no prefix")
    expect(
        list_v1(s3, bucket, Prefix="dir/", Delimiter="/"),
        (["dir/a.txt"], ["dir/other/", "dir/sub/"]),
        "list v1 prefix=dir/ delimiter=/",
    )
    expect(
        list_v2(s3, bucket, Prefix="dir/", Delimiter="/"),
        (["dir/a.txt"], ["dir/other/", "dir/sub/"]),
        "list v2 prefix=dir/ delimiter=/",
    )
    expect(
        list_v2(s3, bucket, Delimiter="/"),
        (["big.bin", "small.txt", "top.txt"], ["dir/"]),
        "list v2 delimiter=/",
    )
    expect(
        list_v2(s3, bucket, Prefix="dir/sub/"),
        (["dir/sub/b.txt", "dir/sub/c.txt"], []),
        "list v2 prefix=dir/sub/",
    )
    expect(list_v2(s3, bucket, Prefix="nothing/"), ([], []), "list v2 prefix=nothing/")
    expect(list_all_v2_paginated(s3, bucket, 2), everything, "list v2 in pages of 2")
    step("list v1/v2 with prefix and delimiter, paginated")

    # Copies with awkward keys.
    awkward = {
        "with space/ünïcödé + plus.txt": "copy of/ñ+é ü.txt",
        "a+b=c&d.txt": "100% sure?.txt",
        "日本語/キー.txt": "emoji 🎉/x.txt",
    }
    for src, dst in awkward.items():
        body = ("content of " + src).encode()
        s3.put_object(Bucket=bucket, Key=src, Body=body)
        s3.copy_object(Bucket=bucket, Key=dst, CopySource={"Bucket": bucket, "Key": src})
        expect(s3.get_object(Bucket=bucket, Key=dst)["Body"].read(), body, f"copy {src!r} -> {dst!r}")
        expect(s3.head_object(Bucket=bucket, Key=src)["ContentLength"], len(body), f"HEAD {src!r}")
    awkward_keys = list(awkward) + list(awkward.values())
    everything = sorted(everything + awkward_keys)
    expect(list_v2(s3, bucket), (everything, []), "list v2 after the copies")
    expect(list_v1(s3, bucket), (everything, []), "list v1 after the copies")
    expect(
        list_v2(s3, bucket, Prefix="with space/"),
        (["with space/ünïcödé + plus.txt"], []),
        "list v2 prefix='with space/'",
    )
    step("copy objects with spaces, unicode, '+' and '%' in keys")

    # Deletes.
    s3.delete_object(Bucket=bucket, Key="small.txt")
    expect(status_of(lambda: s3.head_object(Bucket=bucket, Key="small.txt")), 404, "HEAD deleted")
    everything.remove("small.txt")
    doomed = ["dir/sub/b.txt", "with space/ünïcödé + plus.txt", "100% sure?.txt", "top.txt"]
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in doomed]})
    expect(sorted(d["Key"] for d in r.get("Deleted", [])), sorted(doomed), "delete_objects Deleted")
    expect(r.get("Errors", []), [], "delete_objects Errors")
    everything = sorted(k for k in everything if k not in doomed)
    expect(list_v2(s3, bucket), (everything, []), "list v2 after the deletes")
    step("delete object, delete_objects (multiple)")

    # Empty and remove the bucket.
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in everything]})
    expect(len(r.get("Deleted", [])), len(everything), "delete_objects of the rest")
    expect(list_v2(s3, bucket), ([], []), "list v2 of the emptied bucket")
    s3.delete_bucket(Bucket=bucket)
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    if bucket in names:
        raise AssertionError(f"bucket {bucket} still listed after delete_bucket: {names}")
    step("delete bucket")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--addressing", choices=["path", "virtual"], default="path")
    p.add_argument("--big-mib", type=int, default=64)
    p.add_argument("--resolve-domain", help="domain whose names to resolve to --resolve-to")
    p.add_argument("--resolve-to", default="127.0.0.1")
    p.add_argument("--access-key", help="sign with this access key (unsigned without)")
    p.add_argument("--secret-key")
    args = p.parse_args()

    if args.resolve_domain:
        probe = f"{args.bucket}.{args.resolve_domain}"
        try:
            socket.getaddrinfo(probe, 80)
            print(f"note: {probe} resolves on this machine; no override", flush=True)
        except socket.gaierror:
            print(
                f"note: {probe} does not resolve here; resolving *.{args.resolve_domain} "
                f"to {args.resolve_to} inside this process",
                flush=True,
            )
            resolve_domain_to(args.resolve_domain, args.resolve_to)

    s3 = make_client(args.endpoint, args.addressing, args.access_key, args.secret_key)
    workload(s3, args.bucket, args.big_mib * MIB)
    print("boto3 workload: all checks passed", flush=True)


if __name__ == "__main__":
    sys.exit(main())
