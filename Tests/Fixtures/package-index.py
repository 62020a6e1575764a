#!/usr/bin/env python3
"""A package index on the host's loopback, for the end-to-end CI test (CIProjectTests).

Serves the files in DIR as PyPI does (PEP 503 simple pages at /simple/NAME/, each file at
/files/FILE with its sha256), with PyPI's caching headers: pages for 10 minutes, files for a
year, immutable. A pip with a warm cache therefore downloads nothing. Listens on 127.0.0.1 only,
writes its port to PORTFILE once it listens, and appends "METHOD PATH STATUS" for every
request to LOG: what the test reads to tell a download from a cache hit.

usage: package-index.py DIR LOG PORTFILE
"""
import hashlib
import html
import http.server
import os
import re
import sys

root, log_path, port_path = sys.argv[1], sys.argv[2], sys.argv[3]


def project(filename):
    """The normalized project name of a wheel or sdist file name (PEP 503)."""
    name = filename.split("-")[0] if filename.endswith(".whl") else filename.rsplit("-", 1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


class Index(http.server.BaseHTTPRequestHandler):
    def log_request(self, code="-", size="-"):
        with open(log_path, "a") as log:
            log.write(f"{self.command} {self.path} {code}\n")

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type, max_age):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", f"max-age={max_age}" + (", immutable" if max_age > 600 else ""))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        files = sorted(os.listdir(root))
        match = re.fullmatch(r"/simple/([a-z0-9-]+)/", self.path)
        if match:
            links = []
            for name in files:
                if project(name) == match.group(1):
                    with open(os.path.join(root, name), "rb") as f:
                        digest = hashlib.sha256(f.read()).hexdigest()
                    links.append(f'<a href="/files/{html.escape(name)}#sha256={digest}">{html.escape(name)}</a><br>')
            if links:
                body = ("<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n").encode()
                return self.reply(200, body, "text/html", 600)
        match = re.fullmatch(r"/files/([A-Za-z0-9_.+-]+)", self.path)
        if match and match.group(1) in files:
            with open(os.path.join(root, match.group(1)), "rb") as f:
                return self.reply(200, f.read(), "application/octet-stream", 365 * 24 * 3600)
        self.reply(404, b"not found\n", "text/plain", 0)

    do_HEAD = do_GET


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Index)
with open(port_path + ".new", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_path + ".new", port_path)
server.serve_forever()
