package edge

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// interimOrigin answers with the 1xx codes given in the request's X-Interim
// field (comma-separated; each with a Link field naming it), then reads the
// request body and answers 200 with it, cacheable.
func interimOrigin(t *testing.T) string {
	t.Helper()
	origin, _ := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		for _, c := range strings.Split(r.Header.Get("X-Interim"), ",") {
			var code int
			if _, err := fmt.Sscan(c, &code); err != nil {
				continue
			}
			w.Header().Set("Link", fmt.Sprintf("</hint-%d.css>; rel=preload", code))
			w.Header().Set("Connection", "X-Hop")
			w.Header().Set("X-Hop", "secret")
			w.WriteHeader(code)
		}
		clear(w.Header())
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, body)
	})
	return origin.URL
}

type interimSeen struct {
	mu    sync.Mutex
	codes []int
	links []string
	hops  int
}

func (s *interimSeen) trace(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.codes = append(s.codes, code)
			s.links = append(s.links, h.Get("Link"))
			if h.Get("X-Hop") != "" {
				s.hops++
			}
			return nil
		},
	})
}

// TestInterimForwardedOnPass: the upstream's 1xx responses reach the client
// of a relayed request in order, with their fields but no hop-by-hop ones,
// and do not leak into the final response (RFC 9110 §15.2); 100 is the
// edge's own and not relayed; an upstream that never stops sending them is
// cut off with a 502.
func TestInterimForwardedOnPass(t *testing.T) {
	origin := interimOrigin(t)
	for _, mode := range ioModes {
		t.Run(mode, func(t *testing.T) {
			e := startEdge(t, Config{Origin: origin, IOUring: mode})
			tests := []struct {
				name      string
				method    string
				interim   string
				expect    bool // the client sends Expect: 100-continue
				wantCodes []int
				wantCode  int
			}{
				{"103 on POST", http.MethodPost, "103", false, []int{103}, 200},
				{"several, in order", http.MethodPut, "102,103,103,104", false, []int{102, 103, 103, 104}, 200},
				{"100 is not relayed", http.MethodPost, "100,103", false, []int{103}, 200},
				// The 100 is the edge's own answer to the client's Expect.
				{"with Expect: 100-continue", http.MethodPost, "100,103", true, []int{100, 103}, 200},
				{"without any", http.MethodDelete, "", false, nil, 200},
				{"too many", http.MethodPost, strings.Repeat("103,", maxInterim+1), false, nil, 502},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					var seen interimSeen
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					req, err := http.NewRequestWithContext(seen.trace(ctx), tt.method, e.url+"/p", strings.NewReader("payload"))
					if err != nil {
						t.Fatal(err)
					}
					req.Host = "h"
					req.Header.Set("X-Interim", tt.interim)
					if tt.expect {
						req.Header.Set("Expect", "100-continue")
					}
					tr := &http.Transport{ExpectContinueTimeout: 5 * time.Second}
					defer tr.CloseIdleConnections()
					resp, err := tr.RoundTrip(req)
					if err != nil {
						t.Fatal(err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != tt.wantCode {
						t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantCode, body)
					}
					if tt.wantCode == 200 && string(body) != tt.method+" /p payload" {
						t.Errorf("body %q", body)
					}
					if l := resp.Header.Get("Link"); l != "" {
						t.Errorf("the final response carries the hint's Link %q", l)
					}
					seen.mu.Lock()
					defer seen.mu.Unlock()
					if tt.wantCode == 502 {
						if len(seen.codes) != maxInterim {
							t.Errorf("%d interim responses relayed before the 502, want %d", len(seen.codes), maxInterim)
						}
						return
					}
					if fmt.Sprint(seen.codes) != fmt.Sprint(tt.wantCodes) {
						t.Errorf("interim codes %v, want %v", seen.codes, tt.wantCodes)
					}
					for i, c := range seen.codes {
						if c == 100 {
							continue
						}
						if want := fmt.Sprintf("</hint-%d.css>; rel=preload", c); seen.links[i] != want {
							t.Errorf("interim %d: Link %q, want %q", c, seen.links[i], want)
						}
					}
					if seen.hops != 0 {
						t.Errorf("%d interim responses carried a hop-by-hop field", seen.hops)
					}
				})
			}
		})
	}
}

// TestInterimNotForHTTP10: an HTTP/1.0 client never gets a 1xx (RFC 9110
// §15.2), only the final response.
func TestInterimNotForHTTP10(t *testing.T) {
	e := startEdge(t, Config{Origin: interimOrigin(t), IOUring: IOUringOff})
	_, br := rawGet(t, e, "POST /p HTTP/1.0\r\nHost: h\r\nX-Interim: 103\r\nContent-Length: 1\r\n\r\nx")
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line, " 200 ") {
		t.Fatalf("first line %q, want the final 200", line)
	}
}

// TestInterimNeverStored: a cacheable GET whose origin sends 103 first is
// served and stored from the final response; neither the miss nor the hit
// carries the hint, and the hit is not preceded by a 1xx.
func TestInterimNeverStored(t *testing.T) {
	for _, mode := range ioModes {
		t.Run(mode, func(t *testing.T) {
			e := startEdge(t, Config{Origin: interimOrigin(t), IOUring: mode})
			for i, want := range []string{"stored", "hit"} {
				_, br := rawGet(t, e, "GET /g HTTP/1.1\r\nHost: h\r\nX-Interim: 103\r\n\r\n")
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(body) != "GET /g " || !strings.Contains(resp.Header.Get("Cache-Status"), want) {
					t.Fatalf("request %d: %d %q %s; want 200 %s", i, resp.StatusCode, body, resp.Header.Get("Cache-Status"), want)
				}
				if l := resp.Header.Get("Link"); l != "" {
					t.Errorf("request %d carries the hint's Link %q", i, l)
				}
				if i == 1 {
					// http.ReadResponse skips nothing: a 1xx before the
					// hit would have been read as the response above.
					if br.Buffered() != 0 {
						t.Errorf("%d bytes after the hit", br.Buffered())
					}
				}
			}
		})
	}
}
