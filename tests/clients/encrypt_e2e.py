#!/usr/bin/env python3
"""Clients of a gateway that encrypts object bodies (tests/e2e_encrypt_clients.rs): boto3,
PyArrow, Polars and DuckDB (httpfs, loaded from the `duckdb-extension-httpfs` wheel, never
downloaded) see plaintext; the envelope never shows.

Subcommands (every one exits non-zero with a traceback on the first failed check and prints
`<subcommand>: all checks passed` at the end):

  round-trip    boto3: a single PUT of --small and a parallel multipart upload of --big (8 MiB
                parts, 4 threads); GET byte-identical, HEAD and ListObjectsV2 sizes exact, no
                `s3t-*` metadata visible.
  ranges        boto3: range GETs at every segment boundary of a 3*65536+100 object, at the
                part boundary of a 40 MiB multipart object, and on an empty, a 1-byte and a
                2*65536-byte object.
  parquet-write writes a ~5 MB Parquet file (pyarrow, several row groups) and uploads it.
  pyarrow-read / polars-read / duckdb-read
                each reads a column under a filter from it and gets the exact values.
  put           puts --file as --bucket/--key.
  get           gets --bucket/--key and checks it is --file's bytes.
  head          HEAD --bucket/--key: ContentLength is --file's size.
  expect-error  --op put|get|create-multipart on --bucket/--key fails with --code/--status.
  refusals      s3t-* metadata is 400 InvalidArgument (PutObject, CreateMultipartUpload,
                CopyObject REPLACE); a wrong ChecksumCRC32 is 400 BadDigest; nothing is there.
  kms-check     round trip through the gateway, then reads the object straight from the
                backend (--backend): not the plaintext, encrypted size, s3t-kek = --kek-name.
"""

import argparse
import io
import json
import math
import pathlib
import random
import sys

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

MIB = 1024 * 1024
SEG = 65536


def step(msg):
    print(f"ok: {msg}", flush=True)


def expect(actual, expected, what):
    if actual != expected:
        a = repr(actual)
        e = repr(expected)
        raise AssertionError(f"{what}: expected {e[:300]}, got {a[:300]}")


def s3_client(endpoint, access_key, secret_key):
    # One attempt: a refusal (503 included) must not be retried into a pass or slow the test.
    # Path-style addressing.
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(
            retries={"max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            max_pool_connections=16,
        ),
    )


def client(args):
    return s3_client(args.endpoint, args.access_key, args.secret_key)


def ensure_bucket(s3, bucket):
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as err:
        if err.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def data(n, seed):
    return random.Random(seed).randbytes(n)


def transfer_config():
    return TransferConfig(
        multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=4
    )


def no_envelope(meta, what):
    leaked = [k for k in meta if k.lower().startswith("s3t-")]
    expect(leaked, [], f"{what}: s3t-* metadata visible to the client")


def get_bytes(s3, bucket, key, **kw):
    resp = s3.get_object(Bucket=bucket, Key=key, **kw)
    return resp, resp["Body"].read()


def expect_client_error(code, status, what, call, *a, **kw):
    try:
        call(*a, **kw)
    except ClientError as err:
        got = (err.response["Error"].get("Code"), err.response["ResponseMetadata"]["HTTPStatusCode"])
        expect(got, (code, status), f"{what}: error code and status")
        step(f"{what}: refused with {status} {code}")
        return
    raise AssertionError(f"{what}: succeeded, expected {status} {code}")


def expect_absent(s3, bucket, key, what):
    expect_client_error("404", 404, f"{what}: HEAD", s3.head_object, Bucket=bucket, Key=key)


# ---------------------------------------------------------------------------------------------


def cmd_round_trip(args):
    s3 = client(args)
    bucket = args.bucket
    ensure_bucket(s3, bucket)
    small = pathlib.Path(args.small).read_bytes()
    big = pathlib.Path(args.big).read_bytes()

    s3.put_object(Bucket=bucket, Key="small.bin", Body=small, Metadata={"owner": "e2e"})
    step(f"single PUT of {len(small)} bytes")
    s3.upload_file(args.big, bucket, "big.bin", Config=transfer_config())
    step(f"multipart upload of {len(big)} bytes (8 MiB parts, 4 threads)")

    for key, body in (("small.bin", small), ("big.bin", big)):
        resp, got = get_bytes(s3, bucket, key)
        expect(len(got), len(body), f"GET {key}: length")
        if got != body:
            raise AssertionError(f"GET {key}: other bytes than uploaded")
        expect(resp["ContentLength"], len(body), f"GET {key}: ContentLength")
        no_envelope(resp["Metadata"], f"GET {key}")
        head = s3.head_object(Bucket=bucket, Key=key)
        expect(head["ContentLength"], len(body), f"HEAD {key}: ContentLength")
        no_envelope(head["Metadata"], f"HEAD {key}")
        step(f"GET and HEAD of {key}: {len(body)} bytes, byte-identical, no envelope")
    head = s3.head_object(Bucket=bucket, Key="small.bin")
    expect(head["Metadata"], {"owner": "e2e"}, "HEAD small.bin: the client's own metadata")

    # The streamed download (ranged GETs in parallel) too.
    down = pathlib.Path(args.big + ".down")
    s3.download_file(bucket, "big.bin", str(down), Config=transfer_config())
    if down.read_bytes() != big:
        raise AssertionError("download_file of big.bin: other bytes")
    down.unlink()
    step("download_file of big.bin (parallel ranged GETs): byte-identical")

    listed = s3.list_objects_v2(Bucket=bucket)
    sizes = {o["Key"]: o["Size"] for o in listed.get("Contents", [])}
    expect(sizes, {"small.bin": len(small), "big.bin": len(big)}, "ListObjectsV2 sizes")
    step("ListObjectsV2 sizes are the plaintext sizes")
    print("round-trip: all checks passed", flush=True)


def check_range(s3, bucket, key, body, spec, what=None):
    """GET with `Range: bytes=<spec>`; checks body, Content-Range and ContentLength against
    the plaintext `body` the way S3 answers."""
    size = len(body)
    first, _, last = spec.partition("-")
    if first == "":
        n = int(last)
        start, end = max(0, size - n), size - 1
    else:
        start = int(first)
        end = size - 1 if last == "" else min(int(last), size - 1)
    resp, got = get_bytes(s3, bucket, key, Range=f"bytes={spec}")
    label = what or f"{key} bytes={spec}"
    expect(resp["ResponseMetadata"]["HTTPStatusCode"], 206, f"{label}: status")
    expect(resp.get("ContentRange"), f"bytes {start}-{end}/{size}", f"{label}: Content-Range")
    expect(resp["ContentLength"], end - start + 1, f"{label}: ContentLength")
    if got != body[start : end + 1]:
        raise AssertionError(f"{label}: other bytes than the plaintext's {start}..={end}")


def cmd_ranges(args):
    s3 = client(args)
    bucket = args.bucket
    ensure_bucket(s3, bucket)

    # 3 full segments and 100 bytes.
    size = 3 * SEG + 100
    body = data(size, 0x5E6)
    s3.put_object(Bucket=bucket, Key="three.bin", Body=body)
    specs = []
    for b in (0, SEG - 1, SEG, SEG + 1, 2 * SEG - 1, 2 * SEG, 2 * SEG + 1, 3 * SEG - 1, 3 * SEG, 3 * SEG + 1, size - 1):
        specs.append(f"{b}-{b}")
        specs.append(f"{max(0, b - 1)}-{b + 1}")
        specs.append(f"{b}-")
    specs += [
        f"0-{SEG - 1}",
        f"{SEG}-{2 * SEG - 1}",
        f"{SEG - 1}-{2 * SEG}",
        f"0-{size - 1}",
        f"0-{size + 1000}",
        f"{size - 5}-{size + 100}",
        "-1",
        "-100",
        "-101",
        f"-{SEG + 100}",
        f"-{size}",
        f"-{size + 1}",
        f"-{10 * size}",
    ]
    for spec in specs:
        check_range(s3, bucket, "three.bin", body, spec)
    step(f"{len(specs)} ranges of a {size}-byte object at every segment boundary")
    expect_client_error(
        "InvalidRange", 416, "three.bin bytes=<size>-", s3.get_object,
        Bucket=bucket, Key="three.bin", Range=f"bytes={size}-",
    )

    # The 40 MiB multipart object: 8 MiB parts, so part streams meet at 8 MiB.
    big = data(40 * MIB, 0xB16)
    s3.upload_fileobj(io.BytesIO(big), bucket, "forty.bin", Config=transfer_config())
    p = 8 * MIB
    specs = [f"{p - 1}-{p + 1}", f"{p - 1}-{p - 1}", f"{p}-{p}", f"{p + 1}-{p + 1}",
             f"{p - SEG - 1}-{p + SEG + 1}", f"{2 * p - 1}-{2 * p}", f"{4 * p - 3}-{4 * p + 2}",
             f"{len(big) - 1}-{len(big) - 1}", "-1", f"-{p + 1}", f"{len(big) - 1}-"]
    for spec in specs:
        check_range(s3, bucket, "forty.bin", big, spec)
    _, got = get_bytes(s3, bucket, "forty.bin")
    if got != big:
        raise AssertionError("GET forty.bin: other bytes")
    step(f"{len(specs)} ranges of the 40 MiB multipart object at its part boundaries, and all of it")

    # Empty, 1 byte, exactly two segments.
    s3.put_object(Bucket=bucket, Key="empty.bin", Body=b"")
    resp, got = get_bytes(s3, bucket, "empty.bin")
    expect((got, resp["ContentLength"]), (b"", 0), "GET empty.bin")
    expect(s3.head_object(Bucket=bucket, Key="empty.bin")["ContentLength"], 0, "HEAD empty.bin")
    expect_client_error(
        "InvalidRange", 416, "empty.bin bytes=0-0", s3.get_object,
        Bucket=bucket, Key="empty.bin", Range="bytes=0-0",
    )
    step("the empty object")

    one = b"\x5a"
    s3.put_object(Bucket=bucket, Key="one.bin", Body=one)
    resp, got = get_bytes(s3, bucket, "one.bin")
    expect((got, resp["ContentLength"]), (one, 1), "GET one.bin")
    for spec in ("0-0", "0-", "-1", "-5", "0-10"):
        check_range(s3, bucket, "one.bin", one, spec)
    expect_client_error(
        "InvalidRange", 416, "one.bin bytes=1-", s3.get_object,
        Bucket=bucket, Key="one.bin", Range="bytes=1-",
    )
    step("the 1-byte object")

    two = data(2 * SEG, 0x2222)
    s3.put_object(Bucket=bucket, Key="two.bin", Body=two)
    _, got = get_bytes(s3, bucket, "two.bin")
    if got != two:
        raise AssertionError("GET two.bin: other bytes")
    expect(s3.head_object(Bucket=bucket, Key="two.bin")["ContentLength"], 2 * SEG, "HEAD two.bin")
    for spec in (f"{SEG - 1}-{SEG}", f"{SEG}-", f"{2 * SEG - 1}-", f"{2 * SEG - 1}-{2 * SEG + 5}",
                 "-1", f"-{SEG}", f"-{SEG + 1}", f"-{2 * SEG}", f"-{2 * SEG + 1}", "0-0"):
        check_range(s3, bucket, "two.bin", two, spec)
    expect_client_error(
        "InvalidRange", 416, "two.bin bytes=<size>-", s3.get_object,
        Bucket=bucket, Key="two.bin", Range=f"bytes={2 * SEG}-",
    )
    step("the object of exactly two segments")

    listed = s3.list_objects_v2(Bucket=bucket)
    sizes = {o["Key"]: o["Size"] for o in listed.get("Contents", [])}
    expect(
        sizes,
        {"three.bin": size, "forty.bin": len(big), "empty.bin": 0, "one.bin": 1, "two.bin": 2 * SEG},
        "ListObjectsV2 sizes",
    )
    print("ranges: all checks passed", flush=True)


# ---------------------------------------------------------------------------------------------
# Parquet

ROWS = 320_000
ROW_GROUP = 64_000
LO, HI = 200_000, 200_010  # the filter: LO <= id < HI (in the fourth row group)


def x_of(i):
    return ((i * 7919) % 1_000_003) / 8.0


def tag_of(i):
    return f"t{i % 97:02d}"


def expected_rows():
    return [(i, x_of(i), tag_of(i)) for i in range(LO, HI)]


def cmd_parquet_write(args):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = list(range(ROWS))
    table = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "x": pa.array([x_of(i) for i in ids], pa.float64()),
            "tag": pa.array([tag_of(i) for i in ids], pa.string()),
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=ROW_GROUP, compression="none", use_dictionary=["tag"])
    raw = buf.getvalue()
    meta = pq.ParquetFile(io.BytesIO(raw)).metadata
    expect(meta.num_row_groups, ROWS // ROW_GROUP, "row groups")
    s3 = client(args)
    ensure_bucket(s3, args.bucket)
    s3.put_object(Bucket=args.bucket, Key=args.key, Body=raw)
    step(f"wrote {len(raw)} bytes of Parquet ({meta.num_row_groups} row groups) to {args.bucket}/{args.key}")
    print(json.dumps({"parquet_size": len(raw)}), flush=True)
    print("parquet-write: all checks passed", flush=True)


def check_rows(rows, what):
    rows = sorted((int(a), float(b), str(c)) for a, b, c in rows)
    expect(rows, expected_rows(), what)
    step(f"{what}: {len(rows)} rows, exactly the expected values")


def cmd_pyarrow_read(args):
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    fs = pafs.S3FileSystem(
        access_key=args.access_key,
        secret_key=args.secret_key,
        region="us-east-1",
        endpoint_override=args.endpoint,
        scheme="http",
        force_virtual_addressing=False,
    )
    path = f"{args.bucket}/{args.key}"
    table = pq.read_table(
        path, filesystem=fs, columns=["id", "x", "tag"],
        filters=[("id", ">=", LO), ("id", "<", HI)],
    )
    check_rows(zip(*(table.column(c).to_pylist() for c in ("id", "x", "tag"))), "PyArrow read_table")
    # One column of one row group, through the random-access file.
    with fs.open_input_file(path) as f:
        pf = pq.ParquetFile(f)
        col = pf.read_row_group(3, columns=["x"]).column("x").to_pylist()
    expect(len(col), ROW_GROUP, "PyArrow row group 3: rows")
    expect(col[LO - 3 * ROW_GROUP : HI - 3 * ROW_GROUP], [x_of(i) for i in range(LO, HI)], "PyArrow row group 3")
    total = ds.dataset(path, filesystem=fs, format="parquet").to_table(columns=["id"]).num_rows
    expect(total, ROWS, "PyArrow dataset rows")
    step("PyArrow row group 3 column x and the row count")
    print("pyarrow-read: all checks passed", flush=True)


def cmd_polars_read(args):
    import polars as pl

    options = {
        "aws_access_key_id": args.access_key,
        "aws_secret_access_key": args.secret_key,
        "aws_region": "us-east-1",
        "aws_endpoint_url": args.endpoint,
        "aws_allow_http": "true",
    }
    url = f"s3://{args.bucket}/{args.key}"
    df = (
        pl.scan_parquet(url, storage_options=options)
        .filter((pl.col("id") >= LO) & (pl.col("id") < HI))
        .select("id", "x", "tag")
        .collect()
    )
    check_rows(df.rows(), "Polars scan_parquet with a filter")
    n = pl.scan_parquet(url, storage_options=options).select(pl.len()).collect().item()
    expect(n, ROWS, "Polars row count")
    print("polars-read: all checks passed", flush=True)


def cmd_duckdb_read(args):
    import duckdb
    import duckdb_extension_httpfs

    # The extension comes from the wheel: nothing is downloaded.
    ext = next(
        pathlib.Path(duckdb_extension_httpfs.__file__).parent.glob(
            "extensions/*/httpfs.duckdb_extension"
        )
    )
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    con.execute(f"LOAD '{ext}'")

    def q(s):
        return "'" + s.replace("'", "''") + "'"

    con.execute(
        "CREATE SECRET gateway (TYPE S3, KEY_ID {}, SECRET {}, ENDPOINT {}, URL_STYLE 'path', "
        "USE_SSL false, REGION 'us-east-1')".format(
            q(args.access_key), q(args.secret_key), q(args.endpoint.removeprefix("http://"))
        )
    )
    url = f"s3://{args.bucket}/{args.key}"
    rows = con.execute(
        f"SELECT id, x, tag FROM read_parquet({q(url)}) WHERE id >= {LO} AND id < {HI}"
    ).fetchall()
    check_rows(rows, "DuckDB read_parquet with a filter")
    n = con.execute(f"SELECT count(*) FROM read_parquet({q(url)})").fetchone()[0]
    expect(n, ROWS, "DuckDB count(*)")
    tags = con.execute(
        f"SELECT count(DISTINCT tag) FROM read_parquet({q(url)}) WHERE id < 1000"
    ).fetchone()[0]
    expect(tags, 97, "DuckDB distinct tags")
    print("duckdb-read: all checks passed", flush=True)


# ---------------------------------------------------------------------------------------------
# Small steps for the outage test


def cmd_put(args):
    s3 = client(args)
    ensure_bucket(s3, args.bucket)
    s3.put_object(Bucket=args.bucket, Key=args.key, Body=pathlib.Path(args.file).read_bytes())
    step(f"PUT {args.bucket}/{args.key}")
    print("put: all checks passed", flush=True)


def cmd_get(args):
    s3 = client(args)
    body = pathlib.Path(args.file).read_bytes()
    _, got = get_bytes(s3, args.bucket, args.key)
    if got != body:
        raise AssertionError(f"GET {args.bucket}/{args.key}: other bytes ({len(got)})")
    step(f"GET {args.bucket}/{args.key}: byte-identical")
    print("get: all checks passed", flush=True)


def cmd_head(args):
    s3 = client(args)
    head = s3.head_object(Bucket=args.bucket, Key=args.key)
    expect(head["ContentLength"], pathlib.Path(args.file).stat().st_size, "HEAD ContentLength")
    no_envelope(head["Metadata"], "HEAD")
    step(f"HEAD {args.bucket}/{args.key}")
    print("head: all checks passed", flush=True)


def cmd_expect_error(args):
    s3 = client(args)
    what = f"{args.op} {args.bucket}/{args.key}"
    if args.op == "put":
        call = lambda: s3.put_object(Bucket=args.bucket, Key=args.key, Body=b"x" * 100_000)
    elif args.op == "get":
        call = lambda: s3.get_object(Bucket=args.bucket, Key=args.key)["Body"].read()
    elif args.op == "create-multipart":
        call = lambda: s3.create_multipart_upload(Bucket=args.bucket, Key=args.key)
    else:
        sys.exit(f"unknown --op {args.op}")
    expect_client_error(args.code, args.status, what, call)
    print("expect-error: all checks passed", flush=True)


# ---------------------------------------------------------------------------------------------


def cmd_refusals(args):
    s3 = client(args)
    bucket = args.bucket
    ensure_bucket(s3, bucket)
    body = data(100_000, 0x7E5)

    for name in ("s3t-kek", "S3T-Key", "s3t-anything"):
        expect_client_error(
            "InvalidArgument", 400, f"PutObject with x-amz-meta-{name}", s3.put_object,
            Bucket=bucket, Key="meta.bin", Body=body, Metadata={name: "x"},
        )
    expect_client_error(
        "InvalidArgument", 400, "CreateMultipartUpload with x-amz-meta-s3t-size",
        s3.create_multipart_upload, Bucket=bucket, Key="meta-mpu.bin", Metadata={"s3t-size": "1"},
    )
    s3.put_object(Bucket=bucket, Key="source.bin", Body=body)
    expect_client_error(
        "InvalidArgument", 400, "CopyObject REPLACE with x-amz-meta-s3t-bind", s3.copy_object,
        Bucket=bucket, Key="meta-copy.bin", CopySource={"Bucket": bucket, "Key": "source.bin"},
        Metadata={"s3t-bind": "none"}, MetadataDirective="REPLACE",
    )
    for key in ("meta.bin", "meta-mpu.bin", "meta-copy.bin"):
        expect_absent(s3, bucket, key, key)

    # A wrong CRC32 (the right one of other bytes).
    import zlib, base64

    wrong = base64.b64encode(zlib.crc32(b"other bytes").to_bytes(4, "big")).decode()
    expect_client_error(
        "BadDigest", 400, "PutObject with a wrong ChecksumCRC32", s3.put_object,
        Bucket=bucket, Key="bad-crc.bin", Body=body, ChecksumCRC32=wrong,
    )
    expect_absent(s3, bucket, "bad-crc.bin", "bad-crc.bin")
    right = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    s3.put_object(Bucket=bucket, Key="good-crc.bin", Body=body, ChecksumCRC32=right)
    _, got = get_bytes(s3, bucket, "good-crc.bin")
    expect(got == body, True, "GET good-crc.bin: byte-identical")
    step("the right ChecksumCRC32 is accepted")

    listed = s3.list_objects_v2(Bucket=bucket)
    expect(
        sorted(o["Key"] for o in listed.get("Contents", [])),
        ["good-crc.bin", "source.bin"],
        "ListObjectsV2 after the refusals",
    )
    print("refusals: all checks passed", flush=True)


def cmd_kms_check(args):
    s3 = client(args)
    bucket = args.bucket
    ensure_bucket(s3, bucket)
    results = {}
    for key, size in (("kms/small.bin", 300_000), ("kms/empty.bin", 0), ("kms/seg.bin", SEG)):
        body = data(size, size + 1)
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        _, got = get_bytes(s3, bucket, key)
        expect(got == body, True, f"GET {key}: byte-identical")
        head = s3.head_object(Bucket=bucket, Key=key)
        expect(head["ContentLength"], size, f"HEAD {key}")
        no_envelope(head["Metadata"], f"HEAD {key}")

        # Straight from the backend: what is at rest.
        backend = s3_client(args.backend, "test", "test")
        raw_resp, raw = get_bytes(backend, bucket, key)
        expected_size = size + 32 * max(1, math.ceil(size / SEG))
        expect(len(raw), expected_size, f"{key} at rest: size")
        if size:
            expect(raw != body, True, f"{key} at rest: not the plaintext")
            plain_blocks = {body[i : i + 16] for i in range(0, size - 15, 16)}
            hits = [j for j in range(len(raw) - 15) if raw[j : j + 16] in plain_blocks]
            expect(hits, [], f"{key} at rest: offsets holding 16 plaintext bytes")
        meta = raw_resp["Metadata"]
        expect(meta.get("s3t-kek"), args.kek_name, f"{key} at rest: s3t-kek")
        results[key] = {"stored": len(raw), "plain": size, "meta": sorted(meta)}
        step(f"{key}: {size} bytes, {len(raw)} at rest, s3t-kek {meta.get('s3t-kek')}")

    # A copy out of the encrypted bucket is decrypted by the gateway; like S3's COPY
    # directives, it keeps the user metadata and the tags (moto implements tagging).
    plain_bucket = args.plain_bucket
    ensure_bucket(s3, plain_bucket)
    body = data(100_000, 7)
    s3.put_object(Bucket=bucket, Key="kms/tagged.bin", Body=body, Metadata={"colour": "blue"},
                  Tagging="team=data%20eng&tier=hot")
    s3.copy_object(Bucket=plain_bucket, Key="copy.bin",
                   CopySource={"Bucket": bucket, "Key": "kms/tagged.bin"})
    _, got = get_bytes(s3, plain_bucket, "copy.bin")
    expect(got == body, True, "copied plaintext: byte-identical")
    _, raw = get_bytes(backend, plain_bucket, "copy.bin")
    expect(raw == body, True, "the copy in the unencrypted bucket is the plaintext at rest")
    tags = s3.get_object_tagging(Bucket=plain_bucket, Key="copy.bin")["TagSet"]
    expect(sorted((t["Key"], t["Value"]) for t in tags), [("team", "data eng"), ("tier", "hot")],
           "tags carried over by the re-encrypting copy")
    head = s3.head_object(Bucket=plain_bucket, Key="copy.bin")
    expect(head["Metadata"], {"colour": "blue"}, "user metadata carried over, no envelope")
    step("copy out of the encrypted bucket: plaintext at rest, tags and metadata kept")
    print(json.dumps(results), flush=True)
    print("kms-check: all checks passed", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--access-key", required=True)
    p.add_argument("--secret-key", required=True)
    p.add_argument("--bucket")
    p.add_argument("--key")
    p.add_argument("--file")
    p.add_argument("--small")
    p.add_argument("--big")
    p.add_argument("--op")
    p.add_argument("--code")
    p.add_argument("--status", type=int)
    p.add_argument("--backend")
    p.add_argument("--kek-name")
    p.add_argument("--plain-bucket")
    args = p.parse_args()
    commands = {
        "round-trip": cmd_round_trip,
        "ranges": cmd_ranges,
        "parquet-write": cmd_parquet_write,
        "pyarrow-read": cmd_pyarrow_read,
        "polars-read": cmd_polars_read,
        "duckdb-read": cmd_duckdb_read,
        "put": cmd_put,
        "get": cmd_get,
        "head": cmd_head,
        "expect-error": cmd_expect_error,
        "refusals": cmd_refusals,
        "kms-check": cmd_kms_check,
    }
    if args.command not in commands:
        sys.exit(f"unknown command {args.command!r}; one of {sorted(commands)}")
    commands[args.command](args)


if __name__ == "__main__":
    main()
