package issuer

import (
	"context"

	"github.com/kipass/kipass/registry"
)

// RegistryFacts returns the FactSource of the immunization registry behind c: the
// registry client's kipass errors (ENOTFOUND, EUNAVAILABLE) pass through unchanged.
func RegistryFacts(c *registry.Client) FactSource {
	return FactSourceFunc(func(ctx context.Context, personID string) (*Facts, error) {
		rec, err := c.Person(ctx, personID)
		if err != nil {
			return nil, err
		}
		return &Facts{PersonID: rec.PersonID, Holder: rec.Holder, UpdatedAt: rec.UpdatedAt}, nil
	})
}
