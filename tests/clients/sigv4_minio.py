#!/usr/bin/env python3
"""The MinIO SDK (minio-py) signing (SigV4) against the gateway, for
`tests/e2e_sigv4_clients.rs`.

The foundation workload: make_bucket, put_object of small objects (keys with spaces, `+`,
`%` and unicode) and of a multi-MiB stream in 5 MiB parts, fput_object of a multi-MiB file in
5 MiB parts (multipart, parallel parts), get_object whole and ranged (offset/length),
fget_object, stat_object, list_objects with prefix, delimiter and recursive, copy_object,
remove_object, remove_objects (multi-object delete), presigned_get_object fetched with urllib,
remove_bucket. Over https (`--ca`) the client's urllib3 PoolManager trusts the test CA
(`ca_certs`); so does urllib's SSL context for the presigned GET.

minio-py's own trace (`trace_on`) records each request's head; the script prints each as a
`request: {json}` line and the set of `x-amz-content-sha256` values as `payload modes: [...]`
(minio-py signs the payload's SHA-256 over http and sends `UNSIGNED-PAYLOAD` over https).

Exits non-zero with a traceback on the first failed check and prints
`minio: all checks passed` at the end.
"""

import argparse
import io
import json
import os
import ssl
import sys
import tempfile
import urllib.request
from datetime import timedelta

import urllib3
from minio import Minio
from minio.commonconfig import CopySource
from minio.deleteobjects import DeleteObject

from boto3_workload import MIB, expect, sha256, step

PART = 5 * MIB


def request_heads(trace):
    """The requests of a minio-py trace: method, path and the headers of interest."""
    requests = []
    lines = trace.splitlines()
    for i, line in enumerate(lines):
        if line != "---------START-HTTP---------":
            continue
        method, target, _ = lines[i + 1].split(" ", 2)
        entry = {"method": method, "path": target.split("?", 1)[0]}
        query = target.split("?", 1)[1] if "?" in target else ""
        entry["query"] = sorted(p.split("=", 1)[0] for p in query.split("&") if p)
        for header in lines[i + 2:]:
            if not header:
                break
            name, value = header.split(": ", 1)
            name = name.lower()
            if name == "authorization":
                entry[name] = value.split(" ", 1)[0]
            elif name in ("x-amz-content-sha256", "content-md5", "content-length", "range"):
                entry[name] = value
        requests.append(entry)
    return requests


def read_all(response):
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def workload(client, bucket, big_size, ssl_context):
    client.make_bucket(bucket)
    expect(client.bucket_exists(bucket), True, "bucket_exists after make_bucket")
    step(f"make_bucket {bucket}")

    small = {
        "small.txt": b"minio small object\n" * 100,
        "dir/a.txt": b"a",
        "dir/sub/b.txt": b"b",
        "dir/with space + plus ü.txt": "ünïcödé body".encode(),
        "日本語/キー 100%.txt": b"japanese key",
    }
    for key, body in small.items():
        client.put_object(bucket, key, io.BytesIO(body), len(body))
        expect(read_all(client.get_object(bucket, key)), body, f"get_object {key!r}")
        expect(client.stat_object(bucket, key).size, len(body), f"stat_object {key!r} size")
    step(f"put_object/get_object/stat_object of {len(small)} small objects, awkward keys")

    big = os.urandom(big_size)
    parts = -(-big_size // PART)
    result = client.put_object(bucket, "big/stream.bin", io.BytesIO(big), len(big), part_size=PART)
    if not result.etag.endswith(f"-{parts}"):
        raise AssertionError(f"put_object of {big_size} bytes: a {parts}-part ETag expected, got {result.etag}")
    expect(sha256(read_all(client.get_object(bucket, "big/stream.bin"))), sha256(big), "big stream")
    step(f"put_object of {big_size} bytes in {parts} parts of 5 MiB, sha256 equal")

    with tempfile.TemporaryDirectory() as tmp:
        up, down = os.path.join(tmp, "up.bin"), os.path.join(tmp, "down.bin")
        with open(up, "wb") as f:
            f.write(big)
        result = client.fput_object(bucket, "big/file ü+.bin", up, part_size=PART)
        if not result.etag.endswith(f"-{parts}"):
            raise AssertionError(f"fput_object: a {parts}-part ETag expected, got {result.etag}")
        client.fget_object(bucket, "big/file ü+.bin", down)
        with open(down, "rb") as f:
            expect(sha256(f.read()), sha256(big), "fget_object of the fput_object file")
    stat = client.stat_object(bucket, "big/file ü+.bin")
    expect(stat.size, big_size, "stat_object of the fput_object file")
    step(f"fput_object/fget_object of {big_size} bytes in {parts} parts, sha256 equal")

    got = read_all(client.get_object(bucket, "big/stream.bin", offset=PART - 10, length=100))
    expect(got, big[PART - 10:PART + 90], "ranged get_object across a part boundary")
    got = read_all(client.get_object(bucket, "small.txt", offset=10, length=20))
    expect(got, small["small.txt"][10:30], "ranged get_object of small.txt")
    step("ranged get_object")

    def names(**kw):
        return sorted(o.object_name for o in client.list_objects(bucket, **kw))

    everything = sorted(list(small) + ["big/stream.bin", "big/file ü+.bin"])
    expect(names(recursive=True), everything, "list_objects recursive")
    expect(names(), sorted(["small.txt", "dir/", "big/", "日本語/"]), "list_objects delimiter=/")
    expect(
        names(prefix="dir/"),
        ["dir/a.txt", "dir/sub/", "dir/with space + plus ü.txt"],
        "list_objects prefix=dir/ delimiter=/",
    )
    expect(names(prefix="dir/sub/", recursive=True), ["dir/sub/b.txt"], "list_objects prefix=dir/sub/")
    step("list_objects with prefix, delimiter, recursive")

    src = "dir/with space + plus ü.txt"
    client.copy_object(bucket, "copies/ñ+é copy.txt", CopySource(bucket, src))
    expect(read_all(client.get_object(bucket, "copies/ñ+é copy.txt")), small[src], "copied object")
    everything = sorted(everything + ["copies/ñ+é copy.txt"])
    step("copy_object of an awkward key")

    url = client.presigned_get_object(bucket, src, expires=timedelta(minutes=10))
    if "X-Amz-Signature=" not in url:
        raise AssertionError(f"presigned_get_object: not a SigV4 URL: {url}")
    with urllib.request.urlopen(url, timeout=60, context=ssl_context) as resp:
        expect(resp.read(), small[src], "presigned GET with urllib")
    step("presigned_get_object fetched with urllib")

    client.remove_object(bucket, "small.txt")
    everything.remove("small.txt")
    errors = list(client.remove_objects(bucket, [DeleteObject(k) for k in everything]))
    expect(errors, [], "remove_objects errors")
    expect(names(recursive=True), [], "list_objects after remove_objects")
    client.remove_bucket(bucket)
    expect(client.bucket_exists(bucket), False, "bucket_exists after remove_bucket")
    step("remove_object, remove_objects, remove_bucket")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True, help="host:port")
    p.add_argument("--ca", help="use https, trusting this CA")
    p.add_argument("--bucket", required=True)
    p.add_argument("--big-mib", type=int, default=11)
    p.add_argument("--access-key", required=True)
    p.add_argument("--secret-key", required=True)
    args = p.parse_args()

    http_client = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=10, read=120),
        retries=False,
        **({"cert_reqs": "CERT_REQUIRED", "ca_certs": args.ca} if args.ca else {}),
    )
    client = Minio(
        args.endpoint,
        access_key=args.access_key,
        secret_key=args.secret_key,
        secure=bool(args.ca),
        http_client=http_client,
    )
    ssl_context = ssl.create_default_context(cafile=args.ca) if args.ca else None
    trace = io.StringIO()
    client.trace_on(trace)
    workload(client, args.bucket, args.big_mib * MIB, ssl_context)
    client.trace_off()

    requests = request_heads(trace.getvalue())
    for entry in requests:
        print("request: " + json.dumps(entry, ensure_ascii=False), flush=True)
    unsigned = [r for r in requests if r.get("authorization") != "AWS4-HMAC-SHA256"]
    if unsigned:
        raise AssertionError(f"requests not signed with AWS4-HMAC-SHA256: {unsigned}")
    modes = {r.get("x-amz-content-sha256", "<none>") for r in requests}
    modes = sorted({"<sha256 hex>" if len(m) == 64 else m for m in modes})
    print("payload modes: " + json.dumps(modes), flush=True)
    print("minio: all checks passed", flush=True)


if __name__ == "__main__":
    sys.exit(main())
