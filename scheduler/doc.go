// Command scheduler is berth's single entry point: registry, placement,
// health, and the compute and admin APIs.
//
//	scheduler serve                 run the scheduler
//	scheduler members               the gossip membership view, as a table
//	scheduler servers list|add|drain|activate|remove   manage servers through the admin API
//	scheduler backup FILE           a consistent copy of the registry (VACUUM INTO)
//	scheduler check                 PRAGMA integrity_check of the registry (safe while serving)
//
// Settings come from flags, the environment or a KEY=VALUE file (BERTH_CONFIG);
// `scheduler help` lists them.
package main
