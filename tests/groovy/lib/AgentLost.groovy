/** The agent went away: what retry's agent() condition is for. */
class AgentLost extends RuntimeException {
    AgentLost(String label) { super("agent lost: ${label}".toString()) }
}
