#!/usr/bin/env python3
"""Virtual-hosted-style S3 requests sent with http.client and an explicit Host header.

`<bucket>.<domain>` need not resolve: every request goes to 127.0.0.1:<port> with
`Host: <bucket>.<domain>:<port>`, exactly what a virtual-hosted client sends. Checks create
bucket, put, get, range get, head, list v1/v2 with prefix and delimiter, copy, delete,
multi-object delete; then checks with path-style requests (`Host: 127.0.0.1:<port>`,
`/<bucket>/...`) that the virtual-hosted requests acted on that same bucket.

Every request is signed (SigV4, `Authorization` header over the payload's SHA-256) with
`--access-key`/`--secret-key` by botocore's signer, for the Host header it is sent with.
Prints `raw virtual-hosted: all checks passed` at the end; exits non-zero on the first
failure.
"""

import argparse
import base64
import hashlib
import http.client
import os
import sys
import xml.etree.ElementTree as ET
from urllib.parse import quote, urlencode

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def step(msg):
    print(f"ok: {msg}", flush=True)


def expect(actual, expected, what):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


class Client:
    def __init__(self, port, host, credentials):
        self.port = port
        self.host = host
        self.credentials = credentials

    def sign(self, method, target, headers, body):
        """The headers with the SigV4 ones added, for `method target` to `self.host`."""
        request = AWSRequest(
            method=method, url=f"http://{self.host}{target}", data=body, headers=headers
        )
        S3SigV4Auth(self.credentials, "s3", "us-east-1").add_auth(request)
        return dict(request.headers.items())

    def request(self, method, path, body=b"", headers=None, query=None):
        target = path
        if query is not None:
            target += "?" + query
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            hdrs = {"Host": self.host}
            hdrs.update(headers or {})
            hdrs = self.sign(method, target, hdrs, body)
            # skip_host: the Host header is ours, not derived from the connection address.
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for k, v in hdrs.items():
                conn.putheader(k, v)
            if body or method in ("PUT", "POST"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders()
            if body:
                conn.send(body)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def ok(self, expected_status, method, path, what, **kw):
        status, headers, data = self.request(method, path, **kw)
        if status != expected_status:
            raise AssertionError(
                f"{what}: {method} {path} (Host: {self.host}) gave {status}, "
                f"expected {expected_status}: {data[:2000]!r}"
            )
        return headers, data


def key_path(key):
    return "/" + quote(key, safe="/~")


def parse_listing(data):
    root = ET.fromstring(data)
    keys = [c.find(NS + "Key").text for c in root.findall(NS + "Contents")]
    prefixes = [c.find(NS + "Prefix").text for c in root.findall(NS + "CommonPrefixes")]
    return keys, prefixes


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--access-key", required=True)
    p.add_argument("--secret-key", required=True)
    args = p.parse_args()

    credentials = Credentials(args.access_key, args.secret_key)
    vhost = Client(args.port, f"{args.bucket}.{args.domain}:{args.port}", credentials)
    path_style = Client(args.port, f"127.0.0.1:{args.port}", credentials)
    b = args.bucket

    vhost.ok(200, "PUT", "/", "create bucket")
    step(f"create bucket {b} virtual-hosted")

    data = os.urandom(1000)
    key = "dir/ünï code+plus.bin"
    h, _ = vhost.ok(200, "PUT", key_path(key), "put object", body=data)
    expect(h.get("etag"), '"%s"' % hashlib.md5(data).hexdigest(), "ETag of the PUT")
    _, got = vhost.ok(200, "GET", key_path(key), "get object")
    expect(got, data, "GET body")
    h, got = vhost.ok(206, "GET", key_path(key), "range get", headers={"Range": "bytes=100-199"})
    expect(got, data[100:200], "bytes 100-199")
    expect(h.get("content-range"), "bytes 100-199/1000", "Content-Range")
    h, _ = vhost.ok(200, "HEAD", key_path(key), "head object")
    expect(h.get("content-length"), "1000", "HEAD Content-Length")
    vhost.ok(404, "HEAD", key_path("missing"), "head a missing object")
    step("put/get/range/head virtual-hosted")

    for k in ["dir/a.txt", "dir/sub/b.txt", "dir/other/c.txt", "top.txt"]:
        vhost.ok(200, "PUT", key_path(k), f"put {k}", body=k.encode())
    q = urlencode({"list-type": "2", "prefix": "dir/", "delimiter": "/"})
    _, listing = vhost.ok(200, "GET", "/", "list v2", query=q)
    expect(
        parse_listing(listing),
        (["dir/a.txt", "dir/ünï code+plus.bin"], ["dir/other/", "dir/sub/"]),
        "list v2 prefix=dir/ delimiter=/",
    )
    q = urlencode({"prefix": "dir/", "delimiter": "/"})
    _, listing = vhost.ok(200, "GET", "/", "list v1", query=q)
    expect(
        parse_listing(listing),
        (["dir/a.txt", "dir/ünï code+plus.bin"], ["dir/other/", "dir/sub/"]),
        "list v1 prefix=dir/ delimiter=/",
    )
    step("list v1/v2 virtual-hosted")

    copy = "copy of/ñ+é ü.bin"
    vhost.ok(
        200,
        "PUT",
        key_path(copy),
        "copy object",
        headers={"x-amz-copy-source": quote(f"/{b}/{key}", safe="/~")},
    )
    _, got = vhost.ok(200, "GET", key_path(copy), "get the copy")
    expect(got, data, "body of the copy")
    step("copy object virtual-hosted")

    vhost.ok(204, "DELETE", key_path("top.txt"), "delete object")
    vhost.ok(404, "HEAD", key_path("top.txt"), "head the deleted object")
    doomed = ["dir/a.txt", "dir/sub/b.txt", copy]
    body = (
        "<Delete>"
        + "".join(f"<Object><Key>{k}</Key></Object>" for k in doomed)
        + "<Quiet>false</Quiet></Delete>"
    ).encode()
    _, res = vhost.ok(
        200,
        "POST",
        "/",
        "delete objects",
        body=body,
        query="delete",
        headers={
            "Content-MD5": base64.b64encode(hashlib.md5(body).digest()).decode(),
            "Content-Type": "application/xml",
        },
    )
    deleted = sorted(d.find(NS + "Key").text for d in ET.fromstring(res).findall(NS + "Deleted"))
    expect(deleted, sorted(doomed), "Deleted keys of the multi-object delete")
    step("delete object and delete objects virtual-hosted")

    # The same bucket, path-style.
    q = urlencode({"list-type": "2"})
    _, listing = path_style.ok(200, "GET", f"/{b}", "path-style list", query=q)
    expect(
        parse_listing(listing),
        (["dir/other/c.txt", "dir/ünï code+plus.bin"], []),
        "path-style listing of the virtual-hosted bucket",
    )
    _, got = path_style.ok(200, "GET", f"/{b}" + key_path(key), "path-style get")
    expect(got, data, "path-style GET of a virtual-hosted PUT")
    step("path-style requests see the virtual-hosted writes")

    for k in ["dir/other/c.txt", key]:
        vhost.ok(204, "DELETE", key_path(k), f"delete {k}")
    vhost.ok(204, "DELETE", "/", "delete bucket")
    path_style.ok(404, "HEAD", f"/{b}", "head the deleted bucket")
    step("delete bucket virtual-hosted")

    print("raw virtual-hosted: all checks passed", flush=True)


if __name__ == "__main__":
    sys.exit(main())
