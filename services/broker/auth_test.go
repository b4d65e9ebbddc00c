package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"
	"golang.org/x/crypto/bcrypt"

	"github.com/driftwatch/driftwatch/events"
)

// startBroker runs an embedded broker with auth in a temporary folder on a
// random 127.0.0.1 port, with the streams created.
func startBroker(t *testing.T, auth Auth, client ClientOptions) *Broker {
	t.Helper()
	b, err := Start(Options{
		DataDir: t.TempDir(), Listen: "127.0.0.1:-1", SyncInterval: time.Minute,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		Auth:   auth, Client: client,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := EnsureStreams(ctx, b.JS, StreamSettings{DedupeWindow: time.Hour, MaxAge: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	return b
}

// writeFile writes data to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// client is one identity's connection, with its asynchronous errors (the
// server's permissions violations arrive there).
type client struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	errs chan error
}

func dial(url string, opts ...nats.Option) (*client, error) {
	c := &client{errs: make(chan error, 256)}
	opts = append(opts, nats.MaxReconnects(0), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case c.errs <- err:
		default:
		}
	}))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, err
	}
	c.nc = nc
	c.js, err = jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// outcome is what the server did with an action.
type outcome string

const (
	allowed outcome = "allowed"
	refused outcome = "refused" // a permissions violation naming the subject
	failed  outcome = "failed"  // another error
)

// try runs act and tells whether the server allowed it: refused when the
// connection's error handler gets a permissions violation naming subject
// (the server says so at once; a refused request would only time out).
func (c *client) try(subject string, act func(ctx context.Context) error) (outcome, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- act(ctx) }()
	// subject is the refused subject, or several separated by "|"; one
	// ending in "." is a prefix (a consumer's create subject ends with
	// its generated name).
	violation := func(err error) bool {
		if !errors.Is(err, nats.ErrPermissionViolation) {
			return false
		}
		for _, s := range strings.Split(subject, "|") {
			if !strings.HasSuffix(s, ".") {
				s += `"`
			}
			if strings.Contains(err.Error(), `"`+s) {
				return true
			}
		}
		return false
	}
	for {
		select {
		case err := <-c.errs:
			if violation(err) {
				cancel()
				<-done
				return refused, err.Error()
			}
		case err := <-done:
			if violation(err) {
				return refused, err.Error()
			}
			if err != nil {
				return failed, err.Error()
			}
			// The server answers a refused subscription at once: its
			// violation is in before a flush returns.
			if err := c.nc.Flush(); err != nil {
				return failed, err.Error()
			}
			for {
				select {
				case err := <-c.errs:
					if violation(err) {
						return refused, err.Error()
					}
					continue
				default:
				}
				return allowed, ""
			}
		}
	}
}

// jsAPI sends a JetStream API request and returns its error reply as an
// error.
func jsAPI(ctx context.Context, nc *nats.Conn, subject string, body any) error {
	var data []byte
	if body != nil {
		data, _ = json.Marshal(body)
	}
	msg, err := nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		return err
	}
	var reply struct {
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		return fmt.Errorf("%s: reply %q: %w", subject, msg.Data, err)
	}
	if reply.Error != nil {
		return fmt.Errorf("%s: %d %s", subject, reply.Error.Code, reply.Error.Description)
	}
	return nil
}

var msgSeq atomic.Int64

func publishJS(subject string, js jetstream.JetStream, stream string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		id := fmt.Sprintf("m%d", msgSeq.Add(1))
		ack, err := js.Publish(ctx, subject, []byte(`{"probe":"`+id+`"}`), jetstream.WithMsgID(id))
		if err != nil {
			return err
		}
		if ack.Stream != stream || ack.Sequence == 0 {
			return fmt.Errorf("acknowledged by %s at %d, want %s", ack.Stream, ack.Sequence, stream)
		}
		return nil
	}
}

// TestPermissionMatrix runs each action as each identity of a broker with
// users and checks the server allows or refuses it as the roles say:
// publishers publish their own systems' events (with a JetStream
// acknowledgement) and ask the gate, nothing else; subscribers read the
// alerts stream; operators read every stream and ask the gate but change
// nothing, not even driftwatch's own durable consumers; driftwatch's
// internal identity may do everything; an anonymous client does not get in.
func TestPermissionMatrix(t *testing.T) {
	dir := t.TempDir()
	pubKP, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pubKey, _ := pubKP.PublicKey()
	opsHash, err := bcrypt.GenerateFromPassword([]byte("ops-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, Auth{
		Users: []User{
			{Name: "shop-middleware", Role: RolePublisher, Systems: []string{"shop"}, NKey: pubKey},
			{Name: "alerts-reader", Role: RoleSubscriber, PasswordFile: writeFile(t, dir, "sub.pw", "subscriber-password\n")},
			{Name: "ops", Role: RoleOperator, PasswordFile: writeFile(t, dir, "ops.pw", string(opsHash)+"\n")},
		},
		Durables: []string{"dw-detector"},
	}, ClientOptions{})
	url := b.ClientURL

	// The log as driftwatch leaves it: an event, a dead letter, an alert,
	// its detector's durable consumer and an ops team's durable consumer.
	ctx := context.Background()
	for _, p := range []struct{ subject, stream string }{
		{"driftwatch.in.shop", events.EventsStream}, {"driftwatch.dlq.shop", events.DLQStream}, {"driftwatch.alerts.warning.seed", events.AlertsStream},
	} {
		if err := publishJS(p.subject, b.JS, p.stream)(ctx); err != nil {
			t.Fatal(err)
		}
	}
	detCfg := jetstream.ConsumerConfig{Durable: "dw-detector", FilterSubject: "driftwatch.in.>", AckPolicy: jetstream.AckAllPolicy}
	for _, cfg := range []jetstream.ConsumerConfig{detCfg, {Durable: "audit", AckPolicy: jetstream.AckExplicitPolicy}} {
		if _, err := b.JS.CreateOrUpdateConsumer(ctx, events.EventsStream, cfg); err != nil {
			t.Fatal(err)
		}
	}
	gate, err := b.Conn.Subscribe(events.ValidateSubject, func(m *nats.Msg) { _ = m.Respond([]byte(`{"ok":true}`)) })
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Unsubscribe()
	if err := b.Conn.Flush(); err != nil {
		t.Fatal(err)
	}

	type action struct {
		name    string
		subject string // the subject a refusal names
		run     func(c *client) func(ctx context.Context) error
	}
	actions := []action{
		{"publish own system (JetStream, PubAck)", "driftwatch.in.shop", func(c *client) func(ctx context.Context) error {
			return publishJS("driftwatch.in.shop", c.js, events.EventsStream)
		}},
		{"publish own system with the order in the subject", "driftwatch.in.shop.A-1", func(c *client) func(ctx context.Context) error {
			return publishJS("driftwatch.in.shop.A-1", c.js, events.EventsStream)
		}},
		{"publish another system", "driftwatch.in.erp", func(c *client) func(ctx context.Context) error {
			return publishJS("driftwatch.in.erp", c.js, events.EventsStream)
		}},
		{"publish an alert", "driftwatch.alerts.critical.x", func(c *client) func(ctx context.Context) error {
			return publishJS("driftwatch.alerts.critical.x", c.js, events.AlertsStream)
		}},
		{"ask the gate", events.ValidateSubject, func(c *client) func(ctx context.Context) error {
			return func(ctx context.Context) error {
				_, err := c.nc.RequestWithContext(ctx, events.ValidateSubject, []byte(`{}`))
				return err
			}
		}},
		{"subscribe driftwatch.alerts.>", "driftwatch.alerts.>", func(c *client) func(ctx context.Context) error {
			return func(ctx context.Context) error {
				sub, err := c.nc.SubscribeSync("driftwatch.alerts.>")
				if err != nil {
					return err
				}
				defer sub.Unsubscribe()
				if err := c.nc.Flush(); err != nil {
					return err
				}
				if err := b.Conn.Publish("driftwatch.alerts.probe.sub", []byte("probe")); err != nil {
					return err
				}
				_, err = sub.NextMsgWithContext(ctx)
				return err
			}
		}},
		{"read the events stream (ordered consumer)", "$JS.API.STREAM.INFO." + events.EventsStream + "|$JS.API.CONSUMER.CREATE." + events.EventsStream + ".", func(c *client) func(ctx context.Context) error {
			return readStream(c.js, events.EventsStream, true)
		}},
		{"read the alerts stream (consumer)", "$JS.API.STREAM.INFO." + events.AlertsStream, func(c *client) func(ctx context.Context) error {
			return readStream(c.js, events.AlertsStream, false)
		}},
		{"get a dead letter", "$JS.API.STREAM.INFO." + events.DLQStream, func(c *client) func(ctx context.Context) error {
			return func(ctx context.Context) error {
				s, err := c.js.Stream(ctx, events.DLQStream)
				if err != nil {
					return err
				}
				_, err = s.GetLastMsgForSubject(ctx, "driftwatch.dlq.shop")
				return err
			}
		}},
		{"update the detector's durable", "$JS.API.CONSUMER.CREATE." + events.EventsStream + ".dw-detector", func(c *client) func(ctx context.Context) error {
			return func(ctx context.Context) error {
				return jsAPI(ctx, c.nc, "$JS.API.CONSUMER.CREATE."+events.EventsStream+".dw-detector",
					map[string]any{"stream_name": events.EventsStream, "config": map[string]any{"durable_name": "dw-detector", "name": "dw-detector", "filter_subject": "driftwatch.in.>", "ack_policy": "all", "deliver_policy": "all"}})
			}
		}},
		{"pull from the detector's durable", "$JS.API.CONSUMER.MSG.NEXT." + events.EventsStream + ".dw-detector", func(c *client) func(ctx context.Context) error {
			return func(ctx context.Context) error {
				_, err := c.nc.RequestWithContext(ctx, "$JS.API.CONSUMER.MSG.NEXT."+events.EventsStream+".dw-detector", []byte(`{"batch":1,"no_wait":true}`))
				return err
			}
		}},
		{"purge the events stream", "$JS.API.STREAM.PURGE." + events.EventsStream, func(c *client) func(ctx context.Context) error {
			return func(ctx context.Context) error {
				return jsAPI(ctx, c.nc, "$JS.API.STREAM.PURGE."+events.EventsStream, nil)
			}
		}},
		{"delete a consumer", "$JS.API.CONSUMER.DELETE." + events.EventsStream + ".audit", func(c *client) func(ctx context.Context) error {
			return func(ctx context.Context) error {
				return jsAPI(ctx, c.nc, "$JS.API.CONSUMER.DELETE."+events.EventsStream+".audit", nil)
			}
		}},
		{"delete the dead-letter stream", "$JS.API.STREAM.DELETE." + events.DLQStream, func(c *client) func(ctx context.Context) error {
			return func(ctx context.Context) error {
				return jsAPI(ctx, c.nc, "$JS.API.STREAM.DELETE."+events.DLQStream, nil)
			}
		}},
	}
	A, R := allowed, refused
	identities := []struct {
		name string
		dial func() (*client, error)
		want []outcome // per action, in order
	}{
		{"publisher for shop", func() (*client, error) { return dial(url, nats.Nkey(pubKey, pubKP.Sign)) },
			[]outcome{A, A, R, R, A, R, R, R, R, R, R, R, R, R}},
		{"subscriber", func() (*client, error) { return dial(url, nats.UserInfo("alerts-reader", "subscriber-password")) },
			[]outcome{R, R, R, R, R, A, R, A, R, R, R, R, R, R}},
		{"operator", func() (*client, error) { return dial(url, nats.UserInfo("ops", "ops-password")) },
			[]outcome{R, R, R, R, A, R, A, A, A, R, R, R, R, R}},
		// Last: it purges and deletes.
		{"driftwatch's internal identity", func() (*client, error) {
			c := &client{errs: make(chan error, 256)}
			nc, err := b.Connect("matrix", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { c.errs <- err }))
			if err != nil {
				return nil, err
			}
			c.nc = nc
			c.js, err = jetstream.New(nc)
			return c, err
		}, []outcome{A, A, A, A, A, A, A, A, A, A, A, A, A, A}},
	}
	for _, id := range identities {
		if id.name == "driftwatch's internal identity" {
			checkUntouched(t, b)
		}
		c, err := id.dial()
		if err != nil {
			t.Fatalf("%s: connect: %v", id.name, err)
		}
		for i, a := range actions {
			got, detail := c.try(a.subject, a.run(c))
			if got != id.want[i] {
				t.Errorf("%s: %s: %s (%s), want %s", id.name, a.name, got, detail, id.want[i])
			}
		}
		c.nc.Close()
	}

	// Anonymous clients, and a wrong password, do not get in.
	for name, opts := range map[string][]nats.Option{
		"anonymous":      nil,
		"wrong password": {nats.UserInfo("ops", "guess")},
		"unknown nkey": func() []nats.Option {
			kp, _ := nkeys.CreateUser()
			pub, _ := kp.PublicKey()
			return []nats.Option{nats.Nkey(pub, kp.Sign)}
		}(),
	} {
		if c, err := dial(url, opts...); !errors.Is(err, nats.ErrAuthorization) {
			if c != nil {
				c.nc.Close()
			}
			t.Errorf("%s: connect: %v, want an authorization violation", name, err)
		}
	}
}

// readStream reads one message of a stream: through an ordered consumer, or
// an ephemeral pull consumer acknowledged explicitly.
func readStream(js jetstream.JetStream, stream string, ordered bool) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		var cons jetstream.Consumer
		if ordered {
			cons, err = s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		} else {
			cons, err = s.CreateConsumer(ctx, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy, InactiveThreshold: time.Minute})
		}
		if err != nil {
			return err
		}
		msgs, err := cons.Fetch(1, jetstream.FetchContext(ctx))
		if err != nil {
			return err
		}
		for m := range msgs.Messages() {
			if !ordered {
				return m.DoubleAck(ctx)
			}
			return nil
		}
		if msgs.Error() != nil {
			return msgs.Error()
		}
		return errors.New("no message")
	}
}

// checkUntouched: the refused writes left the log as it was.
func checkUntouched(t *testing.T, b *Broker) {
	t.Helper()
	ctx := context.Background()
	s, err := b.JS.Stream(ctx, events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if st := s.CachedInfo().State; st.FirstSeq != 1 || st.Msgs == 0 {
		t.Fatalf("events stream purged: %+v", st)
	}
	for _, name := range []string{"audit", "dw-detector"} {
		c, err := s.Consumer(ctx, name)
		if err != nil {
			t.Fatalf("consumer %s: %v", name, err)
		}
		if info := c.CachedInfo(); info.Config.FilterSubject != "" && info.Config.FilterSubject != "driftwatch.in.>" || info.Delivered.Consumer != 0 {
			t.Fatalf("consumer %s changed or read: filter %q, delivered %d", name, info.Config.FilterSubject, info.Delivered.Consumer)
		}
	}
	if _, err := b.JS.Stream(ctx, events.DLQStream); err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
}

// TestInternalInboxesHidden: a client allowed _INBOX.> does not see the
// replies and deliveries of driftwatch's own connections.
func TestInternalInboxesHidden(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	b := startBroker(t, Auth{Users: []User{{Name: "p", Role: RolePublisher, Systems: []string{"shop"}, NKey: pub}}}, ClientOptions{})
	if inbox := b.Conn.NewRespInbox(); !strings.HasPrefix(inbox, InternalInboxPrefix+".") {
		t.Fatalf("driftwatch's inbox %s", inbox)
	}
	c, err := dial(b.ClientURL, nats.Nkey(pub, kp.Sign))
	if err != nil {
		t.Fatal(err)
	}
	defer c.nc.Close()
	snoop, err := c.nc.SubscribeSync("_INBOX.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := publishJS("driftwatch.in.shop", b.JS, events.EventsStream)(ctx); err != nil {
		t.Fatal(err)
	}
	if err := readStream(b.JS, events.EventsStream, false)(ctx); err != nil {
		t.Fatal(err)
	}
	// Everything above reached the server before this; the snooper gets
	// this first if it got nothing of the above.
	if err := b.Conn.Publish("_INBOX.sentinel", nil); err != nil {
		t.Fatal(err)
	}
	m, err := snoop.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "_INBOX.sentinel" {
		t.Fatalf("a client read driftwatch's %s", m.Subject)
	}
}
