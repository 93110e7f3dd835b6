-- Why pricing set a rate (the contract's RateReason as JSON text); none for a rate set by hand.
ALTER TABLE rates ADD COLUMN reason TEXT;
