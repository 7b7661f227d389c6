"""The Faust application and command line of leadscore: thin adapters over `scoring`."""
