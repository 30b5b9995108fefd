// Preloaded into Portkey's gateway for `make bench`: it listens on every
// interface by itself, and servers here listen on loopback only.
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number") args.splice(1, 0, "127.0.0.1");
  else if (args[0] && typeof args[0] === "object" && args[0].port !== undefined) args[0] = { ...args[0], host: "127.0.0.1" };
  return listen.apply(this, args);
};
