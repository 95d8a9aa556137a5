package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Check asks the server for GET /version, the one path every Kubernetes
// API server answers, and returns one error that names the server and says
// what answered instead: nothing (within the request timeout), something
// that is not Kubernetes (a web server's 404 page), or Kubernetes refusing
// kubecdn (wrong credentials). Without it, a kubeconfig that points at the
// wrong server fails later in discovery, with a message that names neither.
func (c *Cluster) Check(ctx context.Context) error {
	ctx, cancel := c.call(ctx)
	defer cancel()
	var code int
	var contentType string
	body, err := c.rest.Get().AbsPath("/version").Do(ctx).StatusCode(&code).ContentType(&contentType).Raw()
	if code == 0 && err != nil { // no HTTP answer at all
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is said once, below
		}
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("%s did not answer within %s: %w", c.Server, c.timeout, err)
		}
		return fmt.Errorf("%s cannot be reached: %w", c.Server, err)
	}
	kube, found := versionAnswer(code, contentType, body)
	switch {
	case !kube:
		return fmt.Errorf("%s is not a Kubernetes API server: GET /version answered %s", c.Server, found)
	case found != "":
		return fmt.Errorf("%s refused kubecdn: %s (check the kubeconfig's credentials)", c.Server, found)
	}
	return nil
}

// versionAnswer judges an answer to GET /version: kube says whether a
// Kubernetes API server gave it (its version, or a Status object); found
// describes it when it is not the version (a refusal, or whatever else
// answered), in a few words for one line.
func versionAnswer(code int, contentType string, body []byte) (kube bool, found string) {
	var v struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
		Message    string `json:"message"`
		GitVersion string `json:"gitVersion"`
	}
	if json.Unmarshal(body, &v) == nil {
		switch {
		case code == http.StatusOK && v.GitVersion != "":
			return true, ""
		case v.Kind == "Status" && v.APIVersion == "v1":
			return true, fmt.Sprintf("%d %s: %s", code, http.StatusText(code), v.Message)
		}
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt == "" {
		mt, _, _ = mime.ParseMediaType(http.DetectContentType(body))
	}
	found = fmt.Sprintf("%d %s", code, http.StatusText(code))
	if len(body) == 0 {
		return false, found + ", empty"
	}
	found += ", " + mt
	if s := snippet(mt, body); s != "" {
		found += fmt.Sprintf(" %q", s)
	}
	return false, found
}

var htmlTitle = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)

// snippet is what identifies a body in a message: an HTML page's title, or
// the first line of text, at most 60 characters; "" for binary bodies.
func snippet(mediaType string, body []byte) string {
	if strings.Contains(mediaType, "html") {
		if m := htmlTitle.FindSubmatch(body); m != nil {
			body = m[1]
		}
	}
	if !utf8.Valid(body) {
		return ""
	}
	line, _, _ := bytes.Cut(bytes.TrimSpace(body), []byte("\n"))
	s := strings.Join(strings.Fields(string(line)), " ")
	if r := []rune(s); len(r) > 60 {
		s = string(r[:60]) + "…"
	}
	return s
}
