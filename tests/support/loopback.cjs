// Preloaded (`node --require`) into npm servers that listen on every
// interface and have no setting for it: a listen on a bare port (a number,
// or a string of digits as read from PORT) binds 127.0.0.1 only, as every
// server the tests start must.
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const port = args[0];
  const bare = typeof port === "number" || (typeof port === "string" && /^\d+$/.test(port));
  if (bare && typeof args[1] !== "string") {
    return listen.call(this, Number(port), "127.0.0.1", ...args.slice(1));
  }
  return listen.apply(this, args);
};
