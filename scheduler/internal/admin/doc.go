// Package admin serves the operators' side of the scheduler under /admin:
// the admin API (servers, cluster totals, the gossip membership view,
// placement dry runs) behind the admin token, which is separate from the
// podex service token and compared in constant time.
package admin
