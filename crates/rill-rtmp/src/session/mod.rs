//! Session state machines: [`server`] answers publishers and players, [`client`] publishes and plays.
