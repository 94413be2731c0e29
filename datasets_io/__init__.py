"""LeRobot v3 datasets: writer, reader, validator, hub transfer and the recorder loop."""
