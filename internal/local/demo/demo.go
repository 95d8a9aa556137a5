// Package demo is the origin `kubecdn up` serves when no origin of the
// user's is given: a page, a CSS and a JS asset, images of three sizes,
// one large file of deterministic bytes for range requests and seeks, and
// video (HLS on demand and live, made by ffmpeg) with a player page.
//
// Every response carries a strong ETag, Last-Modified, Cache-Control and a
// Surrogate-Key (so purge by tag has something to act on); ranges and
// conditional requests are answered by http.ServeContent.
package demo

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"strings"
	"time"
)

//go:embed site
var site embed.FS

// LargePath is the path of the large file.
const LargePath = "/big.bin"

// DefaultLargeSize is the size of the large file unless Options say
// otherwise: 64 MiB.
const DefaultLargeSize = 64 << 20

// modTime is the Last-Modified of every file: fixed, so two runs (and two
// edges) see the same validators.
func modTime() time.Time { return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) }

// Options size the demo. Zero values get the defaults.
type Options struct {
	// LargeSize is the size of LargePath in bytes; if zero, DefaultLargeSize.
	LargeSize int64
	// Video, if not nil, serves under /video/ (its Run makes the media).
	Video *Video
}

type file struct {
	body        []byte
	contentType string
	cache       string
	tags        string
	etag        string
}

// Handler serves the demo origin.
type Handler struct {
	files     map[string]file
	largeSize int64
	largeETag string
	video     *Video
}

// New builds the demo: it reads the embedded page and assets and draws the
// images (deterministic pixels).
func New(o Options) (*Handler, error) {
	if o.LargeSize <= 0 {
		o.LargeSize = DefaultLargeSize
	}
	h := &Handler{files: map[string]file{}, largeSize: o.LargeSize,
		largeETag: fmt.Sprintf(`"big-%d-v1"`, o.LargeSize), video: o.Video}
	embedded := []struct{ name, path, ctype, cache, tags string }{
		{"site/index.html", "/", "text/html; charset=utf-8", "public, max-age=60", "demo page"},
		{"site/style.css", "/assets/style.css", "text/css; charset=utf-8", "public, max-age=3600", "demo assets"},
		{"site/app.js", "/assets/app.js", "text/javascript; charset=utf-8", "public, max-age=3600", "demo assets"},
		{"site/video/index.html", VideoPage, "text/html; charset=utf-8", "public, max-age=60", "demo video"},
		{"site/video/player.js", "/video/player.js", "text/javascript; charset=utf-8", "public, max-age=60", "demo video"},
		{"site/video/hls.light.min.js", "/video/hls.light.min.js", "text/javascript; charset=utf-8", "public, max-age=86400", "demo video"},
		{"site/video/hls.js-LICENSE", "/video/hls.js-LICENSE", "text/plain; charset=utf-8", "public, max-age=86400", "demo video"},
	}
	for _, e := range embedded {
		b, err := site.ReadFile(e.name)
		if err != nil {
			return nil, fmt.Errorf("reading embedded %s: %w", e.name, err)
		}
		h.add(e.path, file{body: b, contentType: e.ctype, cache: e.cache, tags: e.tags})
	}
	h.files["/index.html"] = h.files["/"]
	for _, img := range []struct {
		name string
		side int
	}{{"small", 64}, {"medium", 256}, {"large", 1024}} {
		b, err := drawPNG(img.side)
		if err != nil {
			return nil, fmt.Errorf("drawing %s image: %w", img.name, err)
		}
		h.add("/img/"+img.name+".png", file{body: b, contentType: "image/png", cache: "public, max-age=86400", tags: "demo images"})
	}
	return h, nil
}

func (h *Handler) add(path string, f file) {
	sum := sha256.Sum256(f.body)
	f.etag = `"` + hex.EncodeToString(sum[:12]) + `"`
	h.files[path] = f
}

// Paths lists the paths the demo serves (for banners and tests).
func (h *Handler) Paths() []string {
	return []string{"/", "/assets/style.css", "/assets/app.js", "/img/small.png", "/img/medium.png", "/img/large.png", LargePath}
}

// LargeSize is the size of LargePath.
func (h *Handler) LargeSize() int64 { return h.largeSize }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	hd := w.Header()
	if r.URL.Path == LargePath {
		hd.Set("Content-Type", "application/octet-stream")
		hd.Set("Cache-Control", "public, max-age=86400")
		hd.Set("Surrogate-Key", "demo big")
		hd.Set("ETag", h.largeETag)
		http.ServeContent(w, r, "", modTime(), &largeReader{size: h.largeSize})
		return
	}
	if h.video != nil && strings.HasPrefix(r.URL.Path, "/video/") && h.video.serve(w, r) {
		return
	}
	f, ok := h.files[r.URL.Path]
	if !ok {
		hd.Set("Cache-Control", "public, max-age=10")
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	hd.Set("Content-Type", f.contentType)
	hd.Set("Cache-Control", f.cache)
	hd.Set("Surrogate-Key", f.tags)
	hd.Set("ETag", f.etag)
	http.ServeContent(w, r, "", modTime(), bytes.NewReader(f.body))
}

// FillLarge writes the bytes of the large file from offset off into p: the
// content is a function of the offset alone, so a test can check any range
// without holding the file.
func FillLarge(p []byte, off int64) {
	for i := range p {
		pos := off + int64(i)
		p[i] = byte(mix(uint64(pos)>>3) >> (8 * (uint64(pos) & 7)))
	}
}

// mix is the splitmix64 finalizer.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// largeReader is the large file as an io.ReadSeeker computed on the fly
// (no 64 MiB buffer).
type largeReader struct {
	size, off int64
}

func (l *largeReader) Read(p []byte) (int, error) {
	if l.off >= l.size {
		return 0, io.EOF
	}
	if rem := l.size - l.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	FillLarge(p, l.off)
	l.off += int64(len(p))
	return len(p), nil
}

func (l *largeReader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = l.off + offset
	case io.SeekEnd:
		abs = l.size + offset
	default:
		return 0, fmt.Errorf("seek: invalid whence %d", whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("seek: negative position %d", abs)
	}
	l.off = abs
	return abs, nil
}

// drawPNG draws a side×side image: a colour gradient with deterministic
// noise, so the larger images are really larger on the wire.
func drawPNG(side int) ([]byte, error) {
	img := image.NewNRGBA(image.Rect(0, 0, side, side))
	for y := 0; y < side; y++ {
		for x := 0; x < side; x++ {
			n := mix(uint64(y*side + x))
			img.SetNRGBA(x, y, color.NRGBA{
				R: uint8(x*255/side) ^ uint8(n&0x1f),
				G: uint8(y*255/side) ^ uint8(n>>8&0x1f),
				B: 0x9f ^ uint8(n>>16&0x3f),
				A: 0xff,
			})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Describe is a one-line summary of what the demo serves.
func Describe(largeSize int64) string {
	return strings.Join([]string{"/ (page)", "/assets/{style.css,app.js}", "/img/{small,medium,large}.png",
		fmt.Sprintf("%s (%d MiB)", LargePath, largeSize>>20)}, ", ")
}
