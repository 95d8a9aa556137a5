package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const crashHelperEnv = "KUBECDN_STORE_CRASH_HELPER"

// crashKey and crashSize give the i-th blob the helper writes.
func crashKey(i int) string { return fmt.Sprintf("https://origin/crash/%d", i) }

func crashSize(i int) int { return 100 + (i*7919)%(96<<10) }

// TestCrashHelperProcess is not a test: TestDiskSurvivesSIGKILL runs the test
// binary again with only this function and crashHelperEnv set to
// "<dir>,<blobs>". The helper writes blobs, updates and deletes some, prints
// "flushed N" after each Flush, and once it has flushed <blobs> it keeps
// writing and prints "mid-write" from a writer holding a finished temporary
// file it has not yet renamed, then waits to be killed.
func TestCrashHelperProcess(t *testing.T) {
	arg := os.Getenv(crashHelperEnv)
	if arg == "" {
		t.Skip("helper process for TestDiskSurvivesSIGKILL")
	}
	dir, n, _ := strings.Cut(arg, ",")
	target, _ := strconv.Atoi(n)
	var armed atomic.Bool
	hook := func(tmp string) {
		if armed.Load() {
			fmt.Println("mid-write", tmp)
			time.Sleep(time.Minute)
		}
	}
	d, err := openDisk(DiskOptions{Dir: dir, MaxBytes: 1 << 30, Writers: 3, QueueBytes: 1 << 30}, hook)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		meta, body := testBlob(crashKey(i), 1, crashSize(i))
		d.Put(crashKey(i), meta, body)
		if i%5 == 4 {
			d.UpdateMeta(crashKey(i-2), testMeta(crashKey(i-2), "updated"))
		}
		if i%10 == 9 {
			d.Delete(crashKey(i - 9))
		}
		if i%50 == 49 && i < target {
			d.Flush()
			fmt.Printf("flushed %d\n", i+1)
			if i+1 >= target {
				armed.Store(true)
			}
		}
		if i > target+5000 {
			time.Sleep(time.Minute)
		}
	}
}

// TestDiskSurvivesSIGKILL kills a writing process with SIGKILL while it has
// writes in flight, and checks that the reopened store serves every blob
// flushed before the kill, nothing deleted before it, and only intact blobs.
func TestDiskSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a process")
	}
	dir := t.TempDir()
	for round, target := range []int{100, 250} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d", crashHelperEnv, dir, target))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
		flushed, midWrite := 0, false
		sc := bufio.NewScanner(out)
		for !midWrite && sc.Scan() {
			line := sc.Text()
			if n, ok := strings.CutPrefix(line, "flushed "); ok {
				flushed, _ = strconv.Atoi(n)
			}
			midWrite = strings.HasPrefix(line, "mid-write")
		}
		cmd.Process.Kill() // SIGKILL
		cmd.Wait()
		timer.Stop()
		if !midWrite || flushed < target {
			t.Fatalf("round %d: helper flushed %d blobs, mid-write %v", round, flushed, midWrite)
		}

		d := openTestDisk(t, DiskOptions{Dir: dir, MaxBytes: 1 << 30})
		if d.tempsRemoved.Load() == 0 {
			t.Errorf("round %d: no temporary file found: the kill did not land mid-write", round)
		}
		st := d.Stats()
		served := 0
		// Each round's helper starts again at blob 0, so the blobs flushed
		// in this round are known exactly; later ones may be anything intact.
		for i := range flushed + 2000 {
			key := crashKey(i)
			gm, gb, _, ok := getBlob(t, d, key)
			deleted := i%10 == 0 && i+9 < flushed
			switch {
			case ok && deleted:
				t.Fatalf("round %d: %s deleted before the last flush is back", round, key)
			case !ok && i < flushed && !deleted:
				t.Fatalf("round %d: %s flushed before the kill is missing", round, key)
			case ok:
				served++
				checkBlob(t, key, gm, gb)
				if len(gb) != crashSize(i) {
					t.Fatalf("round %d: %s has %d bytes, want %d", round, key, len(gb), crashSize(i))
				}
				if i%5 == 2 && i+2 < flushed && !strings.HasSuffix(string(gm), ":updated") {
					t.Fatalf("round %d: %s lost its flushed UpdateMeta: %q", round, key, gm)
				}
			}
		}
		if st.CorruptFiles != 0 || d.Stats().CorruptFiles != 0 {
			// A killed process leaves whole files or temporaries, never a
			// partial file under a final name.
			t.Errorf("round %d: corrupt files after SIGKILL: %+v", round, d.Stats())
		}
		if hasTemp(t, dir) {
			t.Errorf("round %d: temp files left after reopen", round)
		}
		t.Logf("round %d: killed after %d flushed blobs; %d temporary files removed; %d blobs served, all intact",
			round, flushed, d.tempsRemoved.Load(), served)
		d.Close()
	}
}
