#!/usr/bin/env python3
"""Clients of the gateway's STS endpoint (AssumeRoleWithWebIdentity, GetCallerIdentity) and
S3 clients using the temporary credentials it issues: boto3 (explicit calls and the default
credential chain), DuckDB (httpfs, loaded from the `duckdb-extension-httpfs` wheel, never
downloaded) and Polars.

Subcommands (every one exits non-zero with a traceback on the first failed check and prints
`<subcommand>: all checks passed` at the end):

  assume        boto3 `sts.assume_role_with_web_identity`: checks the response's fields, then
                puts, gets and lists with the returned credentials; `--creds-out FILE` writes
                them as JSON.
  env-chain     no credentials in code: `boto3.client("s3")` and `boto3.client("sts")` find
                them through AWS_WEB_IDENTITY_TOKEN_FILE / AWS_ROLE_ARN /
                AWS_ROLE_SESSION_NAME and reach the gateway through AWS_ENDPOINT_URL.
  caller        `sts.get_caller_identity()` with the given keys; checks Arn (and Account).
  write-data    puts a Parquet file (pyarrow) and a CSV with the given credentials.
  duckdb-read   DuckDB reads both with a `CREATE SECRET (TYPE S3, ...)` holding the session.
  polars-read   Polars reads both with `storage_options` holding the session.
  denied-write  a put with the given credentials is refused with AccessDenied; a list works.
  session-policy  assumes with a session policy allowing only `<bucket>/team-a/*` and checks
                that writes and lists under team-a/ work and everything else is AccessDenied.
"""

import argparse
import csv
import datetime
import io
import json
import pathlib
import sys
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

# The Parquet/CSV table written and read back.
ROWS = [(1, "alpha", 1.5), (2, "beta", 2.5), (3, "gamma", 3.5), (4, "delta", 4.5)]


def step(msg):
    print(f"ok: {msg}", flush=True)


def expect(actual, expected, what):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def config():
    # One attempt: a refusal must not be retried into a pass, nor slow the test down.
    return Config(retries={"max_attempts": 1, "mode": "standard"})


def s3_config():
    # Path-style, and SigV4 for presigned URLs too (botocore presigns S3 with SigV2 by
    # default, which the gateway refuses).
    return config().merge(Config(signature_version="s3v4", s3={"addressing_style": "path"}))


def s3_client(args, creds=None):
    if creds is None:
        creds = {
            "AccessKeyId": args.access_key,
            "SecretAccessKey": args.secret_key,
            "SessionToken": args.session_token,
        }
    return boto3.client(
        "s3",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds.get("SessionToken"),
        config=s3_config(),
    )


def expect_error(code, what, call, *a, **kw):
    try:
        call(*a, **kw)
    except ClientError as err:
        expect(err.response["Error"]["Code"], code, f"{what}: error code")
        expect(err.response["ResponseMetadata"]["HTTPStatusCode"], 403, f"{what}: status")
        step(f"{what}: refused with {code}")
        return
    raise AssertionError(f"{what}: succeeded, expected {code}")


def put_get_list(s3, bucket, prefix, what):
    key = f"{prefix}object.txt"
    body = f"written by {what}".encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    expect(got, body, f"{what}: get after put")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    expect([o["Key"] for o in listed.get("Contents", [])], [key], f"{what}: list")
    step(f"{what}: put, get and list of {bucket}/{key}")


def cmd_assume(args):
    sts = boto3.client(
        "sts", endpoint_url=args.endpoint, region_name="us-east-1", config=config()
    )
    token = pathlib.Path(args.token_file).read_text()
    before = datetime.datetime.now(datetime.timezone.utc)
    kwargs = {}
    if args.duration:
        kwargs["DurationSeconds"] = args.duration
    resp = sts.assume_role_with_web_identity(
        RoleArn=args.role_arn,
        RoleSessionName=args.session,
        WebIdentityToken=token,
        **kwargs,
    )
    creds = resp["Credentials"]
    expect(resp["ResponseMetadata"]["HTTPStatusCode"], 200, "status")
    role_name = args.role_arn.rsplit("/", 1)[1]
    account = args.role_arn.split(":")[4]
    expect(
        resp["AssumedRoleUser"]["Arn"],
        f"arn:aws:sts::{account}:assumed-role/{role_name}/{args.session}",
        "AssumedRoleUser.Arn",
    )
    if not resp["AssumedRoleUser"]["AssumedRoleId"].endswith(f":{args.session}"):
        raise AssertionError(f"AssumedRoleId: {resp['AssumedRoleUser']['AssumedRoleId']!r}")
    if args.expect_subject is not None:
        expect(resp["SubjectFromWebIdentityToken"], args.expect_subject, "Subject")
    if args.expect_audience is not None:
        expect(resp["Audience"], args.expect_audience, "Audience")
    if args.expect_provider is not None:
        expect(resp["Provider"], args.expect_provider, "Provider")
    if not creds["AccessKeyId"].startswith("ASIA"):
        raise AssertionError(f"AccessKeyId {creds['AccessKeyId']!r} is not a temporary key")
    if len(creds["SecretAccessKey"]) < 30 or not creds["SessionToken"]:
        raise AssertionError("the secret or the session token is missing")
    expiration = creds["Expiration"]
    lifetime = (expiration - before).total_seconds()
    want = args.duration or 3600
    if not want - 5 <= lifetime <= want + 5:
        raise AssertionError(f"Expiration {expiration} is {lifetime}s away, not {want}s")
    step(
        f"assumed {resp['AssumedRoleUser']['Arn']} until {expiration} "
        f"({lifetime:.0f}s), key {creds['AccessKeyId']}"
    )
    if args.creds_out:
        pathlib.Path(args.creds_out).write_text(
            json.dumps({k: creds[k] for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")})
        )
    if args.bucket:
        s3 = s3_client(args, creds)
        put_get_list(s3, args.bucket, f"{args.session}/", "boto3 with the session")
        # A presigned URL carries the session token in X-Amz-Security-Token.
        url = s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": args.bucket, "Key": f"{args.session}/object.txt"},
            ExpiresIn=300,
        )
        if "X-Amz-Security-Token=" not in url:
            raise AssertionError(f"no session token in the presigned URL {url}")
        with urllib.request.urlopen(url) as resp:
            expect(resp.status, 200, "presigned GET status")
            expect(resp.read(), b"written by boto3 with the session", "presigned GET body")
        step("presigned GET with the session token in the query")
    print("assume: all checks passed", flush=True)


def cmd_env_chain(args):
    # Nothing but the environment: no endpoint, region or credentials in code.
    session = boto3.session.Session()
    sts = session.client("sts")
    ident = sts.get_caller_identity()
    expect(ident["Arn"], args.expect_arn, "GetCallerIdentity Arn")
    step(f"GetCallerIdentity through the environment: {ident['Arn']}")
    s3 = session.client("s3")
    s3.create_bucket(Bucket=args.bucket)
    put_get_list(s3, args.bucket, "env-chain/", "boto3 from the environment")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    if args.bucket not in names:
        raise AssertionError(f"ListBuckets does not name {args.bucket}: {names}")
    step("ListBuckets")
    print("env-chain: all checks passed", flush=True)


def cmd_caller(args):
    sts = boto3.client(
        "sts",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id=args.access_key,
        aws_secret_access_key=args.secret_key,
        aws_session_token=args.session_token,
        config=config(),
    )
    ident = sts.get_caller_identity()
    expect(ident["Arn"], args.expect_arn, "Arn")
    expect(ident["Account"], args.expect_account, "Account")
    step(f"GetCallerIdentity: {ident['Arn']} (UserId {ident['UserId']})")
    print("caller: all checks passed", flush=True)


def csv_bytes():
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["id", "name", "score"])
    w.writerows(ROWS)
    return out.getvalue().encode()


def parquet_bytes():
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "id": [r[0] for r in ROWS],
            "name": [r[1] for r in ROWS],
            "score": [r[2] for r in ROWS],
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def cmd_write_data(args):
    s3 = s3_client(args)
    s3.create_bucket(Bucket=args.bucket)
    s3.put_object(Bucket=args.bucket, Key="data/table.parquet", Body=parquet_bytes())
    s3.put_object(Bucket=args.bucket, Key="data/table.csv", Body=csv_bytes())
    step(f"wrote {args.bucket}/data/table.parquet and table.csv")
    print("write-data: all checks passed", flush=True)


def check_rows(rows, what):
    rows = [(int(a), str(b), float(c)) for a, b, c in rows]
    expect(sorted(rows), sorted(ROWS), what)
    step(f"{what}: {len(rows)} rows as written")


def cmd_duckdb_read(args):
    import duckdb
    import duckdb_extension_httpfs

    # The extension comes from the wheel: nothing is downloaded (no network here).
    ext = next(
        pathlib.Path(duckdb_extension_httpfs.__file__).parent.glob(
            "extensions/*/httpfs.duckdb_extension"
        )
    )
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    con.execute(f"LOAD '{ext}'")
    endpoint = args.endpoint.removeprefix("http://")

    def q(s):
        return "'" + s.replace("'", "''") + "'"

    con.execute(
        "CREATE SECRET gateway (TYPE S3, KEY_ID {}, SECRET {}, SESSION_TOKEN {}, "
        "ENDPOINT {}, URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')".format(
            q(args.access_key), q(args.secret_key), q(args.session_token), q(endpoint)
        )
    )
    base = f"s3://{args.bucket}/data"
    check_rows(
        con.execute(f"SELECT id, name, score FROM read_parquet('{base}/table.parquet')").fetchall(),
        "DuckDB read_parquet",
    )
    check_rows(
        con.execute(
            f"SELECT id, name, score FROM read_csv('{base}/table.csv', header = true)"
        ).fetchall(),
        "DuckDB read_csv",
    )
    total = con.execute(f"SELECT sum(score) FROM '{base}/table.parquet'").fetchone()[0]
    expect(total, sum(r[2] for r in ROWS), "DuckDB sum over Parquet")
    step("DuckDB aggregate")
    print("duckdb-read: all checks passed", flush=True)


def cmd_polars_read(args):
    import polars as pl

    options = {
        "aws_access_key_id": args.access_key,
        "aws_secret_access_key": args.secret_key,
        "aws_session_token": args.session_token,
        "aws_region": "us-east-1",
        "aws_endpoint_url": args.endpoint,
        "aws_allow_http": "true",
    }
    base = f"s3://{args.bucket}/data"
    df = pl.read_parquet(f"{base}/table.parquet", storage_options=options)
    check_rows(df.select("id", "name", "score").rows(), "Polars read_parquet")
    df = pl.scan_csv(f"{base}/table.csv", storage_options=options).collect()
    check_rows(df.select("id", "name", "score").rows(), "Polars scan_csv")
    print("polars-read: all checks passed", flush=True)


def cmd_denied_write(args):
    s3 = s3_client(args)
    s3.list_objects_v2(Bucket=args.bucket)
    step("list with the reader's session")
    s3.get_object(Bucket=args.bucket, Key=args.readable_key)["Body"].read()
    step("get with the reader's session")
    expect_error(
        "AccessDenied",
        "put with the reader's session",
        s3.put_object,
        Bucket=args.bucket,
        Key="reader/denied.txt",
        Body=b"nope",
    )
    expect_error(
        "AccessDenied",
        "delete with the reader's session",
        s3.delete_object,
        Bucket=args.bucket,
        Key=args.readable_key,
    )
    print("denied-write: all checks passed", flush=True)


def cmd_session_policy(args):
    bucket = args.bucket
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:*",
                "Resource": f"arn:aws:s3:::{bucket}/team-a/*",
            },
            {
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": f"arn:aws:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": "team-a/*"}},
            },
        ],
    }
    sts = boto3.client(
        "sts", endpoint_url=args.endpoint, region_name="us-east-1", config=config()
    )
    resp = sts.assume_role_with_web_identity(
        RoleArn=args.role_arn,
        RoleSessionName=args.session,
        WebIdentityToken=pathlib.Path(args.token_file).read_text(),
        Policy=json.dumps(policy),
    )
    s3 = s3_client(args, resp["Credentials"])
    s3.put_object(Bucket=bucket, Key="team-a/ok.txt", Body=b"team a")
    expect(
        s3.get_object(Bucket=bucket, Key="team-a/ok.txt")["Body"].read(), b"team a", "get"
    )
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="team-a/")
    expect([o["Key"] for o in listed.get("Contents", [])], ["team-a/ok.txt"], "list team-a/")
    step("put, get and list under team-a/ with the narrowed session")
    expect_error(
        "AccessDenied",
        "put under team-b/",
        s3.put_object,
        Bucket=bucket,
        Key="team-b/denied.txt",
        Body=b"x",
    )
    expect_error(
        "AccessDenied", "get outside team-a/", s3.get_object, Bucket=bucket, Key="outside.txt"
    )
    expect_error(
        "AccessDenied", "list with prefix team-b/", s3.list_objects_v2, Bucket=bucket, Prefix="team-b/"
    )
    expect_error("AccessDenied", "list the whole bucket", s3.list_objects_v2, Bucket=bucket)
    expect_error("AccessDenied", "create another bucket", s3.create_bucket, Bucket=f"{bucket}-b")
    print("session-policy: all checks passed", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("command")
    p.add_argument("--endpoint")
    p.add_argument("--bucket")
    p.add_argument("--role-arn")
    p.add_argument("--session")
    p.add_argument("--token-file")
    p.add_argument("--duration", type=int)
    p.add_argument("--expect-subject")
    p.add_argument("--expect-audience")
    p.add_argument("--expect-provider")
    p.add_argument("--expect-arn")
    p.add_argument("--expect-account")
    p.add_argument("--creds-out")
    p.add_argument("--access-key")
    p.add_argument("--secret-key")
    p.add_argument("--session-token")
    p.add_argument("--readable-key")
    args = p.parse_args()
    commands = {
        "assume": cmd_assume,
        "env-chain": cmd_env_chain,
        "caller": cmd_caller,
        "write-data": cmd_write_data,
        "duckdb-read": cmd_duckdb_read,
        "polars-read": cmd_polars_read,
        "denied-write": cmd_denied_write,
        "session-policy": cmd_session_policy,
    }
    if args.command not in commands:
        sys.exit(f"unknown command {args.command!r}; one of {sorted(commands)}")
    commands[args.command](args)


if __name__ == "__main__":
    main()
