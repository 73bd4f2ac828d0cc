/*
 * loopbind: an LD_PRELOAD library for the Apache RocketMQ JVMs the tests
 * and benchmark scripts start (test/rocketmqenv, test/scripts/bench-compare.sh),
 * so that they listen on loopback only, as every test must.
 *
 * Why: some of their ports have no bind address setting. The broker's HA
 * port (haListenPort) binds the wildcard address whatever bindAddress says,
 * and so do the Apache proxy's gRPC port (grpcServerPort) and Remoting
 * port (remotingListenPort); the other ports follow bindAddress=127.0.0.1.
 * This library wraps bind(2): a bind to the IPv4 wildcard (0.0.0.0) binds
 * 127.0.0.1 instead; a bind to the IPv6 wildcard (::) binds ::ffff:127.0.0.1
 * (so IPv4 clients still reach a dual-stack socket), or ::1 on an
 * IPv6-only socket. Every other bind is passed on unchanged. It is test
 * tooling only: rmqproxy never uses it.
 *
 * Built by test/scripts/build-loopbind.sh (cc -shared -fPIC), which
 * install-rocketmq.sh and bench-compare.sh run.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	static bind_fn next;
	if (!next) {
		next = (bind_fn)dlsym(RTLD_NEXT, "bind");
		if (!next) {
			errno = ENOSYS;
			return -1;
		}
	}
	if (addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		struct sockaddr_in in;
		memcpy(&in, addr, sizeof in);
		if (in.sin_addr.s_addr == htonl(INADDR_ANY)) {
			in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			return next(fd, (const struct sockaddr *)&in, sizeof in);
		}
	} else if (addr && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 in6;
		memcpy(&in6, addr, sizeof in6);
		if (IN6_IS_ADDR_UNSPECIFIED(&in6.sin6_addr)) {
			int v6only = 0;
			socklen_t optlen = sizeof v6only;
			if (getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &optlen) == 0 && v6only) {
				in6.sin6_addr = in6addr_loopback;
			} else {
				static const unsigned char mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
				memcpy(&in6.sin6_addr, mapped, sizeof mapped);
			}
			return next(fd, (const struct sockaddr *)&in6, sizeof in6);
		}
	}
	return next(fd, addr, len);
}
