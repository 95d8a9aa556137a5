//go:build linux

package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startBare serves a bare sender in the given mode on a loopback port.
func startBare(t *testing.T, sendfile bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	b := &bare{sendfile: sendfile, bodies: map[int64]*body{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.serve(c.(*net.TCPConn))
		}
	}()
	return "http://" + ln.Addr().String()
}

func want(size int) []byte {
	return bytes.Repeat([]byte(pattern), size/len(pattern)+1)[:size]
}

// TestBareBodies: both modes send byte-exact bodies of several sizes, one
// after another on a kept-alive connection, and a bad path gets a 404.
func TestBareBodies(t *testing.T) {
	for _, sendfile := range []bool{false, true} {
		url := startBare(t, sendfile)
		client := &http.Client{Timeout: 10 * time.Second}
		for _, size := range []int{0, 1, 1024, 1 << 20, 3<<20 + 17, 1024} {
			resp, err := client.Get(url + "/obj/" + strconv.Itoa(size) + "B/x")
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(got, want(size)) {
				t.Fatalf("sendfile=%v size %d: status %d, %d bytes, %v", sendfile, size, resp.StatusCode, len(got), err)
			}
		}
		resp, err := client.Get(url + "/obj/lots/x")
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || !strings.Contains(string(msg), "bad size") {
			t.Fatalf("bad size: %d %q", resp.StatusCode, msg)
		}
	}
}

func TestBareRefusesNonLoopback(t *testing.T) {
	if err := run([]string{"-listen", "0.0.0.0:0"}, io.Discard); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("got %v, want a refusal naming loopback", err)
	}
	if err := run([]string{"-mode", "mmap"}, io.Discard); err == nil || !strings.Contains(err.Error(), "-mode") {
		t.Fatalf("got %v, want a refusal naming -mode", err)
	}
}
