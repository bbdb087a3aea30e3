use agent::Agent;

/// Today's temperature in a city, in degrees Celsius.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Weather {
    city: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let weather = agent::tool("weather", |w: Weather| async move { w.city + ": 18 °C" });
    let agent = Agent::builder().tool(weather).build().await?;
    println!("{}", agent.run("How warm is it in Lyon today?").await?);
    Ok(())
}
