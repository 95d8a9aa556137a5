package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The video's paths under the demo origin.
const (
	VideoPage      = "/video/"
	VODMaster      = "/video/vod/master.m3u8"        // three rungs, one file per segment
	VODSingle      = "/video/vod/single/master.m3u8" // the same rungs, one byte-range file each
	VODMP4         = "/video/vod/vod.mp4"            // the 480p rung as a plain MP4 (faststart)
	LiveMaster     = "/video/live.m3u8"              // names the live media playlist
	LiveMedia      = "/video/live/index.m3u8"        // the live LL-HLS media playlist, the same URL across encoder restarts
	vodPrefix      = "/video/vod/"
	livePrefix     = "/video/live/"
	immutable      = "public, max-age=31536000, immutable"
	defaultFont    = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
	vodVersion     = "v1" // part of the cache folder's name: change it when the encode changes
	liveTargetSecs = 2
)

// VODRungs are the on-demand ladder: name, size, video bitrate.
var VODRungs = []struct {
	Name, Size, Bitrate string
}{{"240p", "426x240", "250k"}, {"360p", "640x360", "500k"}, {"480p", "854x480", "900k"}}

// VideoOptions configure the demo's video. Zero values get the defaults.
type VideoOptions struct {
	// Off leaves the video out.
	Off bool
	// FFmpeg is the ffmpeg binary; if empty, "ffmpeg" from PATH. Without
	// it the video is left out (Video.Reason says why).
	FFmpeg string
	// CacheDir holds the generated on-demand video, reused by later runs;
	// if empty, kubecdn/video under the user cache dir.
	CacheDir string
	// Font is the TrueType font of the burned-in clock; if empty, Debian's
	// DejaVu Sans Mono Bold (fonts-dejavu-core).
	Font string
	// VODSeconds is the on-demand video's length; if zero, 24.
	VODSeconds int
	// LiveWindow is how many 2 s segments the live playlist lists; if
	// zero, 6.
	LiveWindow int
	// Logger; if nil, slog.Default().
	Logger *slog.Logger
}

// Video is the demo's video: an on-demand rendition generated once into a
// cache folder, and a live stream that ffmpeg encodes in real time while
// Run runs. Until each is ready its paths answer 503.
type Video struct {
	o      VideoOptions
	reason string // why the video is off; empty when on
	vodDir string // the finished on-demand folder

	live *liveStream // the live window; nil when the video is off

	mu       sync.Mutex
	vodReady bool
	vodErr   error
}

// NewVideo checks for ffmpeg and the font; a missing one turns the video
// off (Reason says which) rather than failing: up starts without it.
func NewVideo(o VideoOptions) *Video {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.VODSeconds <= 0 {
		o.VODSeconds = 24
	}
	if o.LiveWindow <= 0 {
		o.LiveWindow = 6
	}
	if o.Font == "" {
		o.Font = defaultFont
	}
	v := &Video{o: o}
	if o.Off {
		v.reason = "turned off"
		return v
	}
	if o.FFmpeg == "" {
		p, err := exec.LookPath("ffmpeg")
		if err != nil {
			v.reason = "ffmpeg not found (apt-get install ffmpeg)"
			return v
		}
		v.o.FFmpeg = p
	}
	if _, err := os.Stat(o.Font); err != nil {
		v.reason = fmt.Sprintf("font %s not found (apt-get install fonts-dejavu-core)", o.Font)
		return v
	}
	if v.o.CacheDir == "" {
		d, err := os.UserCacheDir()
		if err != nil {
			d = os.TempDir()
		}
		v.o.CacheDir = filepath.Join(d, "kubecdn", "video")
	}
	v.vodDir = filepath.Join(v.o.CacheDir, fmt.Sprintf("vod-%s-%ds", vodVersion, o.VODSeconds))
	v.live = newLiveStream(v.o.LiveWindow, time.Now)
	return v
}

// Reason is why the video is off, or "" when it is on.
func (v *Video) Reason() string { return v.reason }

// Describe is a one-line summary for the banner.
func (v *Video) Describe() string {
	if v.reason != "" {
		return "video left out: " + v.reason
	}
	return fmt.Sprintf("video: %s (player), VOD %s (3 rungs, %d s; %s byte-range; %s), live %s (LL-HLS: 2 s segments of %.2f s parts)",
		VideoPage, VODMaster, v.o.VODSeconds, VODSingle, VODMP4, LiveMaster, float64(liveFragMicros)/1e6)
}

// Run generates the on-demand video (or reuses the cache folder's), and
// runs the live encoder until ctx ends, restarting it with a backoff if it
// stops on its own. Every ffmpeg it starts runs in its own process group
// and is stopped (the whole group) before Run returns.
func (v *Video) Run(ctx context.Context) {
	if v.reason != "" {
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := v.prepareVOD(ctx)
		v.mu.Lock()
		v.vodReady, v.vodErr = err == nil, err
		v.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			v.o.Logger.Error("video: generating the on-demand video", "err", err)
		}
	}()
	wait := time.Second
	for ctx.Err() == nil {
		// Each encoder run has an id of its own: its init segment's name,
		// which then never means two contents.
		run := strconv.FormatInt(time.Now().UnixMilli(), 36)
		started := time.Now()
		err := runFFmpeg(ctx, v.o.FFmpeg, "", v.liveArgs(), func(r io.Reader) error {
			return v.live.ingest(r, run)
		})
		if ctx.Err() != nil {
			break
		}
		if time.Since(started) > time.Minute {
			wait = time.Second
		}
		v.o.Logger.Error("video: live encoder stopped; restarting it", "err", err, "in", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
	wg.Wait()
}

// liveArgs encode a test pattern with the wall clock burned in, in real
// time, to fragmented MP4 on stdout: a fragment (an LL-HLS part) every
// 0.5 s, a keyframe forced at every 2 s boundary (a segment), and a
// producer reference time box per fragment, the encoder's wall clock at
// its first frame (the playlist's program date-time, so the player's
// latency counts from capture).
func (v *Video) liveArgs() []string {
	return []string{"-hide_banner", "-nostdin", "-loglevel", "error",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=426x240:rate=25",
		"-re", "-f", "lavfi", "-i", "sine=frequency=660:sample_rate=48000",
		"-vf", "drawtext=fontfile=" + v.o.Font + ":text='LIVE %{localtime}':fontsize=22:fontcolor=white:box=1:boxcolor=black:boxborderw=6:x=10:y=10",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
		// x264's wall clock at each frame's input goes to the prft box;
		// without it the muxer writes its own clock when the fragment is
		// written, a part later.
		"-export_side_data", "prft",
		"-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
		"-force_key_frames", fmt.Sprintf("expr:gte(t,n_forced*%d)", liveTargetSecs), "-b:v", "300k",
		"-c:a", "aac", "-b:a", "48k",
		"-f", "mp4", "-movflags", "empty_moov+default_base_moof+frag_keyframe",
		"-frag_duration", strconv.Itoa(liveFragMicros), "-write_prft", "wallclock", "pipe:1"}
}

// prepareVOD makes the on-demand folder unless a finished one is there:
// one encode of three rungs (the clock is the media time, so a frame says
// where it is), then remuxes of them (same frames) to single byte-range
// files and to a plain MP4. It works in a temporary folder renamed at the
// end, so a stopped run leaves nothing half made.
func (v *Video) prepareVOD(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(v.vodDir, "vod.mp4")); err == nil {
		return nil
	}
	if err := os.MkdirAll(v.o.CacheDir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(v.o.CacheDir, "vod-tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	secs := strconv.Itoa(v.o.VODSeconds)
	split := fmt.Sprintf("[0:v]drawtext=fontfile=%s:text='%%{pts\\:hms}':fontsize=64:fontcolor=white:box=1:boxcolor=black:boxborderw=12:x=24:y=24,split=3[s0][s1][s2];[1:a]asplit=3[a0][a1][a2]", v.o.Font)
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=854x480:rate=25:duration=" + secs,
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=" + secs}
	var maps []string
	var vsm []string
	for i, r := range VODRungs {
		split += fmt.Sprintf(";[s%d]scale=%s[v%d]", i, strings.Replace(r.Size, "x", ":", 1), i)
		maps = append(maps, "-map", fmt.Sprintf("[v%d]", i), "-map", fmt.Sprintf("[a%d]", i),
			fmt.Sprintf("-b:v:%d", i), r.Bitrate)
		vsm = append(vsm, fmt.Sprintf("v:%d,a:%d,name:%s", i, i, r.Name))
	}
	args = append(args, "-filter_complex", split)
	args = append(args, maps...)
	args = append(args, "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main", "-pix_fmt", "yuv420p",
		"-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-c:a", "aac", "-b:a", "64k",
		"-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
		"-hls_flags", "independent_segments", "-master_pl_name", "master.m3u8",
		"-var_stream_map", strings.Join(vsm, " "),
		"-hls_segment_filename", "%v/%03d.m4s", "-hls_fmp4_init_filename", "init.mp4", "%v/index.m3u8")
	start := time.Now()
	if err := runFFmpeg(ctx, v.o.FFmpeg, tmp, args, nil); err != nil {
		return fmt.Errorf("encoding: %w", err)
	}
	if err := os.Mkdir(filepath.Join(tmp, "single"), 0o755); err != nil {
		return err
	}
	for _, r := range VODRungs {
		if err := runFFmpeg(ctx, v.o.FFmpeg, tmp, []string{"-hide_banner", "-nostdin", "-loglevel", "error",
			"-i", r.Name + "/index.m3u8", "-c", "copy",
			"-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
			"-hls_flags", "single_file+independent_segments", "-hls_fmp4_init_filename", r.Name + ".mp4",
			"single/" + r.Name + ".m3u8"}, nil); err != nil {
			return fmt.Errorf("byte-range %s: %w", r.Name, err)
		}
	}
	master, err := os.ReadFile(filepath.Join(tmp, "master.m3u8"))
	if err != nil {
		return err
	}
	single := string(master)
	for _, r := range VODRungs {
		single = strings.ReplaceAll(single, r.Name+"/index.m3u8", r.Name+".m3u8")
	}
	if err := os.WriteFile(filepath.Join(tmp, "single", "master.m3u8"), []byte(single), 0o644); err != nil {
		return err
	}
	top := VODRungs[len(VODRungs)-1].Name
	if err := runFFmpeg(ctx, v.o.FFmpeg, tmp, []string{"-hide_banner", "-nostdin", "-loglevel", "error",
		"-i", top + "/index.m3u8", "-c", "copy", "-movflags", "+faststart", "vod.mp4"}, nil); err != nil {
		return fmt.Errorf("mp4: %w", err)
	}
	// Another up sharing the cache folder may have finished first: its
	// folder is complete and may be serving, so it stays.
	if _, err := os.Stat(filepath.Join(v.vodDir, "vod.mp4")); err == nil {
		return nil
	}
	os.RemoveAll(v.vodDir) // an incomplete folder (a copy interrupted by hand)
	if err := os.Rename(tmp, v.vodDir); err != nil {
		if _, serr := os.Stat(filepath.Join(v.vodDir, "vod.mp4")); serr == nil {
			return nil
		}
		return err
	}
	v.o.Logger.Info("video: on-demand video generated", "dir", v.vodDir, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// VODDir is where the on-demand video is (complete once VODReady).
func (v *Video) VODDir() string { return v.vodDir }

// VODReady tells whether the on-demand video is served.
func (v *Video) VODReady() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.vodReady
}

// serve answers a request under /video/ (other than the player's own
// files); it reports false for paths that are not the video's.
func (v *Video) serve(w http.ResponseWriter, r *http.Request) bool {
	p := r.URL.Path
	hd := w.Header()
	if !strings.HasPrefix(p, vodPrefix) && !strings.HasPrefix(p, livePrefix) && p != LiveMaster {
		return false
	}
	// Players on other origins may read which cache served them.
	hd.Set("Access-Control-Allow-Origin", "*")
	hd.Set("Access-Control-Expose-Headers", "Cache-Status, Age, Content-Length")
	if v.reason != "" {
		hd.Set("Cache-Control", "public, max-age=10")
		http.Error(w, v.Describe(), http.StatusNotFound)
		return true
	}
	v.mu.Lock()
	vodReady, vodErr := v.vodReady, v.vodErr
	v.mu.Unlock()
	notYet := func(what string) {
		hd.Set("Cache-Control", "no-store")
		hd.Set("Retry-After", "2")
		http.Error(w, what+" is not ready yet", http.StatusServiceUnavailable)
	}
	switch {
	case p == LiveMaster:
		if !v.live.ready() {
			notYet("the live stream")
			return true
		}
		// A master playlist naming the one live media playlist, whose URL
		// outlives encoder restarts.
		body := "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=426x240,CODECS=\"avc1.42c015,mp4a.40.2\"\nlive/index.m3u8\n"
		servePlaylist(w, r, []byte(body), "public, max-age=1", "demo video live")
		return true
	case p == LiveMedia:
		v.live.servePlaylist(w, r)
		return true
	case strings.HasPrefix(p, livePrefix):
		v.live.serveMedia(w, r, strings.TrimPrefix(p, livePrefix))
		return true
	default:
		if !vodReady {
			if vodErr != nil {
				hd.Set("Cache-Control", "public, max-age=10")
				http.Error(w, "the on-demand video could not be generated: "+vodErr.Error(), http.StatusNotFound)
				return true
			}
			notYet("the on-demand video (ffmpeg is generating it)")
			return true
		}
		serveVideoFile(w, r, v.vodDir, strings.TrimPrefix(p, vodPrefix), "public, max-age=60", "demo video vod")
		return true
	}
}

// serveVideoFile serves name under dir: playlists with playlistCache and
// a content ETag, media (segments, init segments, MP4) as immutable, with
// ranges. A missing file is a 404 cached for 1 s (a live segment may be
// about to appear).
func serveVideoFile(w http.ResponseWriter, r *http.Request, dir, name, playlistCache, tags string) {
	hd := w.Header()
	clean := path.Clean("/" + name)
	ctype, ok := videoTypes[path.Ext(clean)]
	if !ok || clean != "/"+name {
		hd.Set("Cache-Control", "public, max-age=1")
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	file := filepath.Join(dir, filepath.FromSlash(clean))
	if path.Ext(clean) == ".m3u8" {
		b, err := os.ReadFile(file)
		if err != nil {
			hd.Set("Cache-Control", "public, max-age=1")
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		servePlaylist(w, r, b, playlistCache, tags)
		return
	}
	f, err := os.Open(file)
	if err != nil {
		hd.Set("Cache-Control", "public, max-age=1")
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.IsDir() {
		hd.Set("Cache-Control", "public, max-age=1")
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	hd.Set("Content-Type", ctype)
	hd.Set("Cache-Control", immutable)
	hd.Set("Surrogate-Key", tags)
	hd.Set("ETag", fmt.Sprintf(`"%x-%x"`, fi.Size(), fi.ModTime().UnixNano()))
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// servePlaylist serves a playlist with a content ETag and no
// Last-Modified: it can change twice in one second.
func servePlaylist(w http.ResponseWriter, r *http.Request, b []byte, cache, tags string) {
	sum := sha256.Sum256(b)
	hd := w.Header()
	hd.Set("Content-Type", videoTypes[".m3u8"])
	hd.Set("Cache-Control", cache)
	hd.Set("Surrogate-Key", tags)
	hd.Set("ETag", `"`+hex.EncodeToString(sum[:12])+`"`)
	http.ServeContent(w, r, "", time.Time{}, strings.NewReader(string(b)))
}

var videoTypes = map[string]string{
	".m3u8": "application/vnd.apple.mpegurl",
	".m4s":  "video/iso.segment",
	".mp4":  "video/mp4",
}

// runFFmpeg runs ffmpeg with args in dir in its own process group until it
// exits or ctx ends; then the group gets SIGTERM (ffmpeg finishes its
// files), and SIGKILL 3 s later if anything of it is left. If stdout is
// not nil it reads ffmpeg's standard output until it ends; its error
// stops ffmpeg. The error names ffmpeg's last lines of stderr.
func runFFmpeg(ctx context.Context, bin, dir string, args []string, stdout func(io.Reader) error) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	var stderr tailBuffer
	cmd.Stderr = &stderr
	var out io.ReadCloser
	if stdout != nil {
		var err error
		if out, err = cmd.StdoutPipe(); err != nil {
			return err
		}
	}
	// Start and Wait on one locked thread: the parent-death signal is
	// tied to the thread that started the child.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	inGroup(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting ffmpeg: %w", err)
	}
	var readErr error
	if stdout != nil {
		if readErr = stdout(out); readErr != nil {
			killGroup(cmd, syscall.SIGKILL)
		}
	}
	err := cmd.Wait()
	killGroup(cmd, syscall.SIGKILL) // anything of the group still there
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if readErr != nil {
		return fmt.Errorf("reading ffmpeg's output: %w", readErr)
	}
	if err != nil {
		if s := strings.TrimSpace(stderr.String()); s != "" {
			return fmt.Errorf("ffmpeg: %w: %s", err, s)
		}
		return fmt.Errorf("ffmpeg: %w", err)
	}
	return nil
}

// tailBuffer keeps the last 2 KiB written to it.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 2048 {
		t.b = append([]byte(nil), t.b[len(t.b)-2048:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
