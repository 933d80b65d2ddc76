# The virtual plug's hardware: a clock that can run faster than real time, a load model per
# channel, and register-level simulators of the metering chips that the real drivers in lib/
# talk to unchanged over simulated SPI and I2C buses.
