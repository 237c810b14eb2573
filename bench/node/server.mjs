// The benchmark contract served by the official Socket.IO server (socket.io 4.8, from the
// repository's npm devDependencies): `subscribe` joins the room named by the channel and acks
// {status: "ok"}; `POST /emit` {channel, event, data} emits `<channel>/<event>` to the room and
// answers {delivered: n}, n being the room's size.
//
// Run: node bench/node/server.mjs --port 3000

import http from "node:http";
import { Server } from "socket.io";

const portFlag = process.argv.indexOf("--port");
const port = portFlag > 0 ? Number(process.argv[portFlag + 1]) : 3000;

const httpServer = http.createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/emit") {
    res.writeHead(404).end();
    return;
  }
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      res.writeHead(400).end();
      return;
    }
    const { channel, event, data } = body;
    if (typeof channel !== "string" || typeof event !== "string") {
      res.writeHead(400).end();
      return;
    }
    io.to(channel).emit(`${channel}/${event}`, data);
    const delivered = io.sockets.adapter.rooms.get(channel)?.size ?? 0;
    const answer = JSON.stringify({ delivered });
    res
      .writeHead(200, {
        "Content-Type": "application/json",
        "Content-Length": Buffer.byteLength(answer),
      })
      .end(answer);
  });
});

const io = new Server(httpServer);

io.on("connection", (socket) => {
  socket.on("subscribe", (channel, ack) => {
    if (typeof channel !== "string" || !channel.startsWith("chats/")) {
      if (typeof ack === "function") ack({ status: "error", reason: "unknown_channel" });
      return;
    }
    socket.join(channel);
    if (typeof ack === "function") ack({ status: "ok" });
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${port}`);
});
