package remoting_test

import (
	"bufio"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/rmqproxy/rmqproxy/adapters/remoting"
)

// TestAnHTTPPeerIsNamed: a Remoting request sent to an HTTP server (an
// address that is a web console's or an HTTP proxy's, not a NameServer's)
// gets an HTTP answer, whose "HTTP" reads as a length prefix of 1.2 GB. The
// error says that the peer speaks HTTP rather than only that a frame is too
// large.
func TestAnHTTPPeerIsNamed(t *testing.T) {
	// An HTTP server answering what it cannot parse as a request with 400,
	// as web servers and HTTP proxies do.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = bufio.NewReader(c).Peek(1)
		_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, err := remoting.AppendCommand(nil, &remoting.Command{Code: 105, Serialize: remoting.JSON}) // GET_ROUTEINFO_BY_TOPIC
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	_, err = remoting.ReadCommand(bufio.NewReader(conn), 0)
	if !errors.Is(err, remoting.ErrFrameTooLarge) {
		t.Fatalf("err %v, want a frame too large", err)
	}
	if msg := err.Error(); !strings.Contains(msg, `the peer answered in HTTP ("HTTP/..."), not in RocketMQ's Remoting protocol`) {
		t.Fatalf("err %q does not say the peer speaks HTTP", msg)
	}
	// Decode, on the same bytes, says the same.
	if _, _, err := remoting.Decode([]byte("HTTP/1.1 400 Bad Request\r\n"), 0); err == nil || !strings.Contains(err.Error(), "answered in HTTP") {
		t.Fatalf("Decode: %v", err)
	}
	// A large length prefix that is not "HTTP" keeps the size in its error.
	if _, _, err := remoting.Decode([]byte{0x48, 0x54, 0x54, 0x51, 0, 0, 0, 0}, 0); err == nil || !strings.Contains(err.Error(), "exceeds the maximum of") {
		t.Fatalf("Decode of a large frame: %v", err)
	}
}
