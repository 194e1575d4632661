package dataport

import (
	"strings"
	"testing"
)

func TestSenderOptions(t *testing.T) {
	var o SenderOptions
	if err := o.EnsureDefaults().Validate(); err != nil {
		t.Fatalf("zero options with defaults: %v", err)
	}
	if got, want := o.String(), `stream=MAINT sender="" max_frame=16777216 close_timeout=5s sndbuf=0 pooled=false`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
	for _, tc := range []struct {
		name string
		edit func(*SenderOptions)
		msg  string
	}{
		{"long stream", func(o *SenderOptions) { o.Stream = strings.Repeat("s", 256) }, "is not 1 to 255 bytes"},
		{"long sender", func(o *SenderOptions) { o.SenderID = strings.Repeat("s", 256) }, "sender id of 256 bytes"},
		{"small frame", func(o *SenderOptions) { o.MaxFrameSize = 100 }, "max frame size 100 is out of range"},
		{"huge frame", func(o *SenderOptions) { o.MaxFrameSize = 1 << 31 }, "out of range"},
		{"negative timeout", func(o *SenderOptions) { o.CloseTimeout = -1 }, "close timeout -1ns is negative"},
		{"negative buffer", func(o *SenderOptions) { o.SocketSendBuffer = -1 }, "socket send buffer -1 is negative"},
	} {
		o := SenderOptions{}
		o.EnsureDefaults()
		tc.edit(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v, want an error saying %q", tc.name, err, tc.msg)
		}
	}
}

func TestReceiverOptions(t *testing.T) {
	var o ReceiverOptions
	if err := o.EnsureDefaults().Validate(); err != nil {
		t.Fatalf("zero options with defaults: %v", err)
	}
	if got, want := o.String(), `streams=[] max_frame=16777216 read_buffer=65536 handshake_timeout=10s rcvbuf=0 pooled=false`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
	for _, tc := range []struct {
		name string
		edit func(*ReceiverOptions)
		msg  string
	}{
		{"empty stream", func(o *ReceiverOptions) { o.Streams = []string{"MAINT", ""} }, `stream name "" is not 1 to 255 bytes`},
		{"small frame", func(o *ReceiverOptions) { o.MaxFrameSize = 1023 }, "max frame size 1023 is out of range"},
		{"small read buffer", func(o *ReceiverOptions) { o.ReadBufferSize = 8 }, "read buffer size 8 is below 16"},
		{"negative timeout", func(o *ReceiverOptions) { o.HandshakeTimeout = -1 }, "handshake timeout -1ns is negative"},
		{"negative buffer", func(o *ReceiverOptions) { o.SocketReceiveBuffer = -1 }, "socket receive buffer -1 is negative"},
	} {
		o := ReceiverOptions{}
		o.EnsureDefaults()
		tc.edit(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v, want an error saying %q", tc.name, err, tc.msg)
		}
	}
}
