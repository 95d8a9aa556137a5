package main

import (
	"strings"
	"testing"
	"time"
)

func TestValidateNamesTheBadFlag(t *testing.T) {
	ok := options{url: "https://x/", ca: "ca.pem", proto: "h3", conns: 1, streams: 1, duration: time.Second, timeout: time.Second}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flag string
		mod  func(*options)
	}{
		{"-url", func(o *options) { o.url = "" }},
		{"-ca", func(o *options) { o.ca = "" }},
		{"-proto", func(o *options) { o.proto = "h1" }},
		{"-conns", func(o *options) { o.conns = 2000 }},
		{"-streams", func(o *options) { o.streams = 0 }},
		{"-duration", func(o *options) { o.duration = time.Hour }},
		{"-timeout", func(o *options) { o.timeout = 0 }},
	} {
		o := ok
		tc.mod(&o)
		if err := o.validate(); err == nil || !strings.HasPrefix(err.Error(), tc.flag) {
			t.Errorf("%s: %v", tc.flag, err)
		}
	}
}
