package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// HEAD on an uncached blob whose upstream HEAD has no Content-Length
// answers 200 with the digest and no Content-Length (there is no size to
// promise), never a negative one.
func TestHeadOfUnsizedUpstreamBlobOmitsContentLength(t *testing.T) {
	srv := negotiatingUpstream(t, true).srv
	up := &counting{srv: srv}
	img := randomImage(t, 1024, 1)
	up.push(t, "org/app", "v1", img)
	layers, _ := img.Layers()
	dgst := mustDigest(t, layers[0])
	docker := newUpstream(t)
	n := startNode(t, testConfig(t, t.TempDir(), docker.host(), up.host()))
	status, hdr := rawHead(t, n.addr(), "/v2/ghcr.io/org/app/blobs/"+dgst)
	if status != 200 || hdr.Get("Docker-Content-Digest") != dgst {
		t.Errorf("HEAD: status %d, digest %q; want 200 and %s", status, hdr.Get("Docker-Content-Digest"), dgst)
	}
	if cl, ok := hdr["Content-Length"]; ok {
		t.Errorf("HEAD answered Content-Length %q for a blob whose size the upstream did not say", cl)
	}
}

// rawHead sends a HEAD over a plain connection and returns the status and
// the header fields exactly as sent (net/http's client would drop or
// rewrite Content-Length).
func rawHead(t *testing.T, addr, path string) (int, http.Header) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "HEAD %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path)
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("HEAD %s: %v", path, err)
	}
	var status int
	fmt.Sscanf(line, "HTTP/1.1 %d", &status)
	hdr := http.Header{}
	for {
		l, err := br.ReadString('\n')
		l = strings.TrimRight(l, "\r\n")
		if err != nil || l == "" {
			return status, hdr
		}
		k, v, _ := strings.Cut(l, ":")
		hdr.Add(k, strings.TrimSpace(v))
	}
}
