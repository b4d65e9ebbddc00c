// Package detector finds drift: for every applied event of a system A and
// every flow A -> B it records an expectation that B reflects A's state
// within the flow's SLA, judges each at max(deadline, received_at + settle),
// classifies unmet ones into the contract's patterns (CONTRACT.md section 6)
// and publishes alerts on driftwatch.alerts.<severity>.<pattern>. It also
// raises the per-event findings (unmapped_status, illegal_transition,
// clock_skew, manual_override) and resolves mismatches when the systems
// agree again.
//
// The files, from the pure core out:
//
//	rules.go, judge.go, message.go   what a flow expects, whether an
//	                                 expectation holds, the mismatch it
//	                                 becomes and its sentence: pure functions
//	                                 of rows and a clock (no Pebble, no NATS);
//	                                 replay's gaps use them too
//	engine.go                        the Engine: reads rows and events,
//	                                 records and judges expectations
//	mismatches.go, gateflags.go,     the mismatch lifecycle, gate flags, the
//	clock.go                         per-system clock statistic
//	expectation.go, keyspace.go      the detector's keys and encodings
//	detector.go, outbox.go           the NATS shell: consumer, ticker, outbox
//
// The Engine is the deterministic core: a function of the order index the
// projector wrote, the detector's own state in the store (prefix x/) and an
// explicit clock. It never reads the wall clock, NATS or timers, so scripted
// timelines in testdata/ drive it exactly (engine_test.go). The Detector is
// the shell: the judgement ticker, the outbox publisher, and the events
// themselves, either handed over by the projector's one pass (JudgeBatch:
// projected and judged in one transaction, the default in one process) or
// read by its own durable consumer of DRIFTWATCH_EVENTS (dw-detector, in
// the per-system shape earlier versions ran, which the load tool compares).
//
// Store keys (inside the projections store, format version 1):
//
//	x/e/<order>·<from>·<to>·<dim>·<seq>     an expectation (Expectation)
//	x/d/<judge_at>·<order>·<from>·<to>·<dim>·<seq>   due index of expectations
//	x/m/<alert_id>                          a mismatch (Mismatch, JSON)
//	x/o/<order>·<alert_id>                  the order's open mismatches
//	x/u/<platform>·<field>·<value>          unmapped statuses already reported
//	x/q/<n>                                 the outbox: alerts to publish
//	x/g/<alert_id>                          open gate flags that may expire (value: order)
//	x/k/<system>                            the system's recent event lags (clock.go)
//	x/v/<migration>                         migrations done on this store (x/v/gate-flags)
//
// Exactly-once effect: the consumer's checkpoint, the expectations, the
// mismatches and the outbox entries of a batch are committed together; the
// outbox is published with Nats-Msg-Id <alert_id>:<state> (a change of
// owner, which leaves the state as it is: <alert_id>:assigned:<n>, n
// counting the mismatch's assignments) and deleted once acknowledged, so a
// crash between commit and publish republishes, and the alert stream's
// dedupe drops the copy.
//
// Owners and runbooks (Rules.DefaultOwner, runbooks.go): a
// mismatch opens with the owner the configuration gives it, people change
// it (Engine.Assign) and add notes (Engine.AddNote); the runbook of a
// record is made when it is queued or served, never stored.
//
// No alert from lag: the detector processes an event only once the
// projector of its system has applied it (in the same transaction, or
// committed before), and judges an expectation only
// when every event received before its judgement time has been processed
// (the watermark), so a B event that arrived within the SLA is always seen.
package detector
