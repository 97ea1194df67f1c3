// Package agenttest runs a berth agent inside a test process: the real
// agent API (agent/internal/server, the very Server the agent binary runs,
// with its epoch fence, error mapping and event stream) served over real
// mTLS with certificates from shared/testutil, over the in-memory Docker of
// agent/internal/docker/dockerfake. It is for the scheduler's tests and
// benchmarks, which talk to it with their agent client as to any agent; it
// is importable from outside agent/ (it is not internal), and exposes the
// fake's knobs as methods of Agent.
//
// The scheduler's other agenttest (scheduler/internal/agenttest) runs the
// agent binary against the machine's real Docker; this one needs no Docker.
//
// # From scheduler/internal/fakeagent
//
// The knobs of fakeagent map one to one:
//
//	fakeagent.Start(t, pki, id)            agenttest.Start(t, pki, id)
//	a.ServerID, a.Addr()                   a.ServerID, a.Addr()
//	a.FailCreate.Store(wire.CodeDocker)    a.FailCreate(wire.CodeDocker)   ("" clears; FailNextCreate for one)
//	a.FailUpdate.Store(wire.CodeDocker)    a.FailUpdate(wire.CodeDocker)
//	a.FailPull.Store("pull access …")      a.FailPull("pull access …")
//	a.Down.Store(true)                     a.SetDown(true)                 (503 unavailable on every request)
//	a.Server.Close()                       a.Close()                       (nothing listens any more)
//	a.Server.Config.Handler = wrap(h)      a.Wrap(func(next http.Handler) http.Handler { … })
//	a.Containers(), a.RemovedData()        a.Containers(), a.RemovedData()
//	fixed capacity (4 cores, 8 GiB, …)     the same figures: DefaultCapacity; SetCapacity changes them
//
// New ones: SetDockerDown (the agent answers, its dockerd does not), Exit and
// OOM (a workspace's process ends on its own: die/oom events on the
// stream), SetExec and SetExecIO (the input as a stream), RequireImages,
// AddImage, LastContact.
//
// Streams: the TTY route runs a terminal hook (SetTTY; by default an echo
// terminal) and records every session (Terminals: request, sizes, closed);
// the proxy route reaches a running container's port P at 127.0.0.1:P, so a
// test serves the "app" with an httptest.Server on that port (SetAddress
// changes the address). StartWith bounds the streams (StreamConfig), e.g. a
// short ProxyResponseHeaderTimeout. SetDown and Close end open streams.
//
// Because the API is the real one, it behaves as a real agent does where
// fakeagent was looser:
//   - an injected create failure answers with the API's status for its
//     code (image_not_found is a 404; fakeagent answered 502 for every
//     code); the code is the same;
//   - create requests are validated as by the real adapter: privileged
//     mode, host namespaces and mounts leaving the data directory are
//     refused with 400, and so are unknown JSON fields;
//   - an update leaves a zero field unchanged (Docker's rule);
//   - requests carrying an X-Berth-Epoch older than the container's are
//     refused with 409 stale_epoch;
//   - GET /v1/events streams the container events (fakeagent had no such
//     route), and the agent keeps the event log the scheduler's event
//     watcher fetches (GET /v1/events/log, its latest number in the health
//     answer), so the watcher sees create, start, die, …;
//   - a pull's final line is {done, status "pulled <ref>"}, or {done,
//     error <the FailPull message>};
//   - exec echoes the command line on stdout (fakeagent answered "ok\n");
//     SetExec changes that;
//   - removing a running container needs force (409 conflict otherwise).
//
// The agent's log goes to the test's log (warnings and errors only).
package agenttest
