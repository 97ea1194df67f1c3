// Command agent runs beside one Docker daemon: it measures the host, gossips
// its capacity, and serves the scheduler's container work over mTLS.
package main
