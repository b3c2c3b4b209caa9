// Command mochi-broker runs a Mochi MQTT server (github.com/mochi-mqtt/server/v2) on one
// loopback TCP listener, for edged's tests against brokers other than mosquitto.
//
// Every option is a flag; tests/helpers/otherbrokers.py starts it. With -data the server keeps
// sessions, subscriptions, queued (inflight) and retained messages in a bolt file in that
// directory and reads them back when it starts again there. It stops on SIGTERM or SIGINT.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/listeners"
	"go.etcd.io/bbolt"
)

func main() {
	address := flag.String("listen", "127.0.0.1:1883", "the TCP listener's address")
	data := flag.String("data", "", "keep sessions and messages in a bolt file in this directory")
	maxPacket := flag.Uint("max-packet-size", 0, "Maximum Packet Size announced in CONNACK (0: none)")
	receiveMax := flag.Uint("receive-maximum", 1024, "Receive Maximum announced in CONNACK")
	maxQueued := flag.Uint("max-queued", 65535, "QoS 1/2 messages kept per client (1-65535)")
	writesPending := flag.Int("writes-pending", 65536, "packets waiting to be written per client")
	level := flag.String("log-level", "warn", "debug, info, warn or error")
	flag.Parse()

	var logLevel slog.Level
	if err := logLevel.UnmarshalText([]byte(*level)); err != nil {
		fail(err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(*maxPacket)
	caps.ReceiveMaximum = uint16(*receiveMax)
	caps.MaximumInflight = uint16(*maxQueued)
	caps.MaximumClientWritesPending = int32(*writesPending)
	server := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: logger, InlineClient: false})

	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		fail(err)
	}
	if *data != "" {
		// NoSync: written to the file on every change, without waiting for the disk; what a
		// stopped or killed broker wrote is there when it starts again (a power cut is not).
		err := server.AddHook(new(bolt.Hook), &bolt.Options{
			Path:    filepath.Join(*data, "mochi.db"),
			Options: &bbolt.Options{Timeout: 2 * time.Second, NoSync: true},
		})
		if err != nil {
			fail(err)
		}
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: *address})
	if err := server.AddListener(tcp); err != nil {
		fail(err)
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	served := make(chan error, 1)
	go func() { served <- server.Serve() }()
	select {
	case err := <-served:
		if err != nil {
			fail(err)
		}
		<-stop
	case <-stop:
	}
	if err := server.Close(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mochi-broker:", err)
	os.Exit(1)
}
