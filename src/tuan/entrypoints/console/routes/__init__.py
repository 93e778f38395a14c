"""Console routers, one module per area; ``console.app.ROUTERS`` lists what is mounted."""
