// A stock Node HTTPS server (built-in `https` module only) serving key sets the way
// identity providers' own servers do: `Connection: close`, and the body either chunked
// (Node's default when no length is set) or with a Content-Length, written in pieces
// of a chosen size so the client sees the body arrive in many writes.
//
//   node jwks-server.mjs --cert cert.pem --key key.pem --dir DIR
//
// Prints "READY <port>" once listening on 127.0.0.1. GET /<framing>/<write>/<name>
// serves DIR/<name> with framing "chunked" or "length", in writes of <write> bytes,
// each one after the previous has been handed to the socket.
import { readFileSync } from "node:fs";
import https from "node:https";
import path from "node:path";

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];

const server = https.createServer(
  { cert: readFileSync(args.cert), key: readFileSync(args.key) },
  (req, res) => {
    const [, framing, write, name] = req.url.split("/");
    const size = Number.parseInt(write, 10);
    let body;
    try {
      body = readFileSync(path.join(args.dir, path.basename(name || "")));
    } catch {
      res.writeHead(404, { "Content-Type": "application/json", Connection: "close" });
      res.end("{}");
      return;
    }
    const headers = { "Content-Type": "application/json", Connection: "close" };
    if (framing === "length") headers["Content-Length"] = String(body.length);
    res.writeHead(200, headers);
    let offset = 0;
    const next = () => {
      if (offset >= body.length) {
        res.end();
        return;
      }
      const piece = body.subarray(offset, offset + size);
      offset += piece.length;
      // Wait for each write to be flushed, so each piece leaves as its own write.
      res.write(piece, () => setImmediate(next));
    };
    next();
  },
);
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
