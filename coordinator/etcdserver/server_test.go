package etcdserver

import (
	"net"
	"strings"
	"testing"
)

// TestPortTakenIsRetried: a member whose chosen port is taken (by another
// process, between the choice and the bind) is refused with the port named
// when the port was given, and still starts when it chose its own.
func TestPortTakenIsRetried(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := "http://" + l.Addr().String()
	if _, err := Start(Config{Dir: t.TempDir(), ClientURL: taken}); err == nil || !addrInUse(err) ||
		!strings.Contains(err.Error(), l.Addr().String()) {
		t.Fatalf("a taken client port: %v, want address already in use naming it", err)
	}
	m, err := Start(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
}
