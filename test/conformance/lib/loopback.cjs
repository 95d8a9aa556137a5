// Preloaded (node --require) into the cache-tests origin server, whose
// server.listen(port) would otherwise bind every interface: a listen call
// that names a port but no host is bound to 127.0.0.1 instead.
'use strict'
const net = require('net')
const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  const first = args[0]
  const isPort = typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))
  if (isPort && typeof args[1] !== 'string') {
    args.splice(1, 0, '127.0.0.1')
  } else if (first !== null && typeof first === 'object' && !('path' in first) && first.host === undefined) {
    args[0] = Object.assign({}, first, { host: '127.0.0.1' })
  }
  return listen.apply(this, args)
}
