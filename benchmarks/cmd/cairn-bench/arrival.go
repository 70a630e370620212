package main

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"syscall"
	"time"
)

// arrivalConn is a TCP connection that keeps, for each read, the kernel's
// receive time of the data it returned (SO_TIMESTAMPNS). The herd's
// first-byte figures use it: with 64 clients, a tap and both servers on
// two cores, the moment a client goroutine gets to read a byte can trail
// the byte's arrival by tens of milliseconds of the harness's own
// scheduling, which is not the server's doing.
type arrivalConn struct {
	*net.TCPConn
	rc  syscall.RawConn
	oob []byte

	mu    sync.Mutex
	total int64 // bytes read so far
	reads []arrival
}

// arrival is one read: the connection offset of its first byte, its
// length, and the kernel's receive time for it (see at).
type arrival struct {
	off int64
	n   int
	at  time.Time
}

// dialArrival dials a TCP connection that records arrivals.
func dialArrival(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		c.Close()
		return nil, errors.Join(err, serr)
	}
	return &arrivalConn{TCPConn: tc, rc: rc, oob: make([]byte, syscall.CmsgSpace(16))}, nil
}

func (c *arrivalConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n, oobn int
	var err error
	if rerr := c.rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, err = syscall.Recvmsg(int(fd), p, c.oob, 0)
		return !errors.Is(err, syscall.EAGAIN)
	}); rerr != nil {
		return 0, rerr // a deadline, or the connection closed
	}
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	var at time.Time
	if msgs, err := syscall.ParseSocketControlMessage(c.oob[:oobn]); err == nil {
		for _, m := range msgs {
			if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
				sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
				at = time.Unix(sec, nsec)
			}
		}
	}
	c.mu.Lock()
	c.reads = append(c.reads, arrival{off: c.total, n: n, at: at})
	c.total += int64(n)
	c.mu.Unlock()
	return n, nil
}

// offset is the connection offset reached so far.
func (c *arrivalConn) offset() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// at is the kernel's receive time of the read that held connection
// offset off, or zero if unknown. It is never earlier than the byte's
// arrival, and may be later: a read's time is that of the last segment
// it took, and segments waiting in the queue are merged under the later
// one's time. A lag measured to it is never flattered.
func (c *arrivalConn) at(off int64) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.reads {
		if off >= r.off && off < r.off+int64(r.n) {
			return r.at
		}
	}
	return time.Time{}
}

// arrivalTrace follows which arrivalConn one request gets and where on it
// the response begins.
type arrivalTrace struct {
	mu    sync.Mutex
	conn  *arrivalConn
	start int64
}

func (t *arrivalTrace) context(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		t.mu.Lock()
		defer t.mu.Unlock()
		if c, ok := info.Conn.(*arrivalConn); ok {
			// Nothing of this request's response has come yet: the
			// request is not even written.
			t.conn, t.start = c, c.offset()
		}
	}})
}

// bodyByte is when body byte k of resp reached this host (see at), or
// zero if that cannot be told. resp must have been read whole, and no
// other response read on its connection since (the herd sends one request
// per connection at a time, and none after).
func (t *arrivalTrace) bodyByte(resp *http.Response, k int64) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.conn == nil || resp.ContentLength < 0 || len(resp.TransferEncoding) > 0 {
		return time.Time{}
	}
	header := t.conn.offset() - t.start - resp.ContentLength
	if header <= 0 || header > 64<<10 {
		return time.Time{}
	}
	return t.conn.at(t.start + header + k)
}
