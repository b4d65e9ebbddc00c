package app

import (
	"context"
	"net/http"

	"github.com/driftwatch/driftwatch/events"
	"github.com/driftwatch/driftwatch/services/cluster"
	"github.com/driftwatch/driftwatch/services/consume"
	"github.com/driftwatch/driftwatch/services/httpjson"
)

// StreamStatus is the log's state in GET /v1/status.
type StreamStatus struct {
	Name     string `json:"name"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
}

// Status is GET /v1/status.
type Status struct {
	Stream    StreamStatus     `json:"stream"`
	DLQ       StreamStatus     `json:"dlq"`
	Consumers []consume.Status `json:"consumers"`
	// Cluster is this instance's view of the instances sharing the
	// orders (absent without cluster.instance).
	Cluster *cluster.Status `json:"cluster,omitempty"`
}

// Status reports the stream's last sequence and every consumer's progress.
func (a *App) Status(ctx context.Context) (Status, error) {
	var st Status
	for _, s := range []struct {
		name string
		dst  *StreamStatus
	}{{events.EventsStream, &st.Stream}, {events.DLQStream, &st.DLQ}} {
		stream, err := a.Broker.JS.Stream(ctx, s.name)
		if err != nil {
			return st, err
		}
		info, err := stream.Info(ctx)
		if err != nil {
			return st, err
		}
		*s.dst = StreamStatus{Name: s.name, FirstSeq: info.State.FirstSeq, LastSeq: info.State.LastSeq, Messages: info.State.Msgs, Bytes: info.State.Bytes}
	}
	st.Consumers = []consume.Status{}
	if a.Projector != nil {
		st.Consumers = append(st.Consumers, a.Projector.Status(ctx)...)
	}
	if a.Detector != nil {
		st.Consumers = append(st.Consumers, a.Detector.Status(ctx))
	}
	if a.Cluster != nil {
		cs := a.Cluster.Status()
		st.Cluster = &cs
	}
	return st, nil
}

func (a *App) serveStatus(w http.ResponseWriter, r *http.Request) {
	st, err := a.Status(r.Context())
	if err != nil {
		httpjson.WriteError(w, http.StatusServiceUnavailable, "log_unavailable", err.Error())
		return
	}
	httpjson.Write(w, http.StatusOK, st)
}
