-- G6 in the database: a stored order or payment attempt never moves backwards. One saved
-- change may hold several moves of the state machine (received -> payment_pending -> paid in
-- one transaction), so the database knows, for each state, every state reachable from it
-- along the machine's moves; an UPDATE of orders.state or payment_attempts.state to a state
-- not reachable from the stored one is refused by a trigger (per dialect). Nothing reaches
-- ``received`` again, and a final state moves on only from paid (succeeded) to refunded.
-- A later migration that adds a move adds the rows it makes reachable.
CREATE TABLE state_reachable (
    machine     TEXT NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    PRIMARY KEY (machine, from_state, to_state)
);
INSERT INTO state_reachable (machine, from_state, to_state) VALUES
    ('order', 'received', 'payment_pending'),
    ('order', 'received', 'action_required'),
    ('order', 'received', 'payment_unknown'),
    ('order', 'received', 'payment_failed'),
    ('order', 'received', 'paid'),
    ('order', 'received', 'refunded'),
    ('order', 'received', 'cancelled'),
    ('order', 'payment_pending', 'action_required'),
    ('order', 'payment_pending', 'payment_unknown'),
    ('order', 'payment_pending', 'payment_failed'),
    ('order', 'payment_pending', 'paid'),
    ('order', 'payment_pending', 'refunded'),
    ('order', 'payment_pending', 'cancelled'),
    ('order', 'action_required', 'payment_pending'),
    ('order', 'action_required', 'payment_unknown'),
    ('order', 'action_required', 'payment_failed'),
    ('order', 'action_required', 'paid'),
    ('order', 'action_required', 'refunded'),
    ('order', 'action_required', 'cancelled'),
    ('order', 'payment_unknown', 'payment_pending'),
    ('order', 'payment_unknown', 'action_required'),
    ('order', 'payment_unknown', 'payment_failed'),
    ('order', 'payment_unknown', 'paid'),
    ('order', 'payment_unknown', 'refunded'),
    ('order', 'payment_unknown', 'cancelled'),
    ('order', 'payment_failed', 'payment_pending'),
    ('order', 'payment_failed', 'action_required'),
    ('order', 'payment_failed', 'payment_unknown'),
    ('order', 'payment_failed', 'paid'),
    ('order', 'payment_failed', 'refunded'),
    ('order', 'payment_failed', 'cancelled'),
    ('order', 'paid', 'refunded'),
    ('attempt', 'pending', 'action_required'),
    ('attempt', 'pending', 'unknown'),
    ('attempt', 'pending', 'succeeded'),
    ('attempt', 'pending', 'failed'),
    ('attempt', 'pending', 'refunded'),
    ('attempt', 'action_required', 'succeeded'),
    ('attempt', 'action_required', 'failed'),
    ('attempt', 'action_required', 'refunded'),
    ('attempt', 'unknown', 'pending'),
    ('attempt', 'unknown', 'action_required'),
    ('attempt', 'unknown', 'succeeded'),
    ('attempt', 'unknown', 'failed'),
    ('attempt', 'unknown', 'refunded'),
    ('attempt', 'succeeded', 'refunded');
