// Starter HTTP server using only Node's standard library.
const http = require("http");

const port = Number(process.env.PORT || 3000);
const app = process.env.KATA_APP || "app";

const server = http
  .createServer((req, res) => {
    const body = req.url === "/healthz" ? "ok\n" : `${app} runs on kata (nodejs)\n`;
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end(body);
  })
  .listen(port, "0.0.0.0", () => console.log(`listening on port ${port}`));

// docker stop sends SIGTERM: finish in-flight requests, then exit.
process.on("SIGTERM", () => server.close(() => process.exit(0)));
