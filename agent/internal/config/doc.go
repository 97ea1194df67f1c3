// Package config is the agent's configuration: one struct with Default(),
// Load() (file, then environment, then flags, each overriding the last) and
// Validate(). Only this package and main read flags, the environment or files;
// every component gets its typed part of Config through its constructor.
package config
