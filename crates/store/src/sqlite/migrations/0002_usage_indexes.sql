-- BotArmy schema v2 (SQLite): indexes for usage statistics (`botarmy stats`), which select
-- LLM calls by time (`--since`) and by agent; without them each query reads every call.
CREATE INDEX llm_calls_by_time ON llm_calls (created_at);
CREATE INDEX llm_calls_by_agent ON llm_calls (agent, created_at);
