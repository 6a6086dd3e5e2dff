"""A small client of the Roset control-plane API, shared by the benchmarks in contrib/bench.

Standard library only. Every call has a timeout. The API key is sent in the Authorization header
only; it never appears in an exception text (urllib's HTTPError does not include request headers).
Responses are read in both JSON dialects (docs/PROTOCOL.md §2): wrapped (`{"node": ...}`,
`{"nodes": {...}}`, `children`) or bare (a Node, a flat map, `items`).
"""
import json
import urllib.request


class API:
    def __init__(self, url, key):
        self.url, self.key = url.rstrip("/"), key

    @classmethod
    def from_key_file(cls, url, key_file):
        with open(key_file) as f:
            return cls(url, f.readline().split()[0])

    def call(self, method, path, body=None, timeout=60):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.key)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def root(self):
        out = self.call("POST", "/v1/resolve", {"paths": ["/"]})
        nodes = out.get("nodes", out)
        return next(iter(nodes.values()))

    def resolve(self, base, name):
        """The node named `name` (a relative path) under folder `base`, or None."""
        out = self.call("POST", "/v1/resolve", {"paths": [name], "baseId": base})
        nodes = out.get("nodes", out)
        return next(iter(nodes.values()), None) if nodes else None

    def mkdir(self, parent, name):
        out = self.call("POST", "/v1/nodes", {"name": name, "type": "folder", "parentId": parent})
        return out.get("node", out)

    def create_file_node(self, parent, name, size=0):
        """A file entry made in the control plane only (no bytes uploaded)."""
        out = self.call("POST", "/v1/nodes", {"name": name, "type": "file", "parentId": parent, "size": size})
        return out.get("node", out)

    def put_small(self, parent, name, payload):
        init = self.call("POST", "/v1/uploads/init",
                         {"parentId": parent, "name": name, "size": len(payload), "multipart": False})
        req = urllib.request.Request(init["uploadUrl"], data=payload, method="PUT")
        with urllib.request.urlopen(req, timeout=60) as r:
            etag = r.headers.get("ETag", "").strip('"')
        self.call("POST", "/v1/uploads/commit", {"uploadToken": init["uploadToken"], "etag": etag, "size": len(payload)})

    def download_url(self, node_id):
        return self.call("GET", f"/v1/nodes/{node_id}/download")

    def list_all(self, folder, page_size=1000):
        """Pages through a folder's children; returns how many there are."""
        n, page = 0, 1
        while True:
            out = self.call("GET", f"/v1/nodes/{folder}/children?page={page}&pageSize={page_size}")
            items = out.get("children", out.get("items", []))
            n += len(items)
            if not out.get("hasMore"):
                return n
            page += 1
